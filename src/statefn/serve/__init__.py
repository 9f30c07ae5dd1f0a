"""``statefn serve``: a web UI and a JSON API over the ledger, webhooks and cron."""
