"""Tidy every row, then keep the valid ones and set the others aside with a reason."""

import re

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


def tidy(row):
    """One row with its spaces trimmed, its name and district capitalised, its age a number."""
    age = row["age"].strip()
    return {
        "id": row["id"].strip(),
        "name": " ".join(word.capitalize() for word in row["name"].split()),
        "email": row["email"].strip().lower(),
        "age": int(age) if age.isdigit() else None,
        "district": row["district"].strip().capitalize(),
        "visit_date": row["visit_date"].strip(),
    }


def problem(patient):
    """Why a patient row cannot be used, or None when it can."""
    if not EMAIL.fullmatch(patient["email"]):
        return f"invalid email {patient['email']!r}"
    if patient["age"] is None:
        return "missing age"
    if not 0 <= patient["age"] <= 120:
        return f"age {patient['age']} is out of range"
    return None


@fn
def clean(state):
    patients, rejected = [], []
    for patient in map(tidy, state["data"]):
        reason = problem(patient)
        if reason is None:
            patients.append(patient)
        else:
            rejected.append({"id": patient["id"], "reason": reason})
    print(f"kept {len(patients)} rows, rejected {len(rejected)}")
    return {**state, "data": {"patients": patients, "rejected": rejected}}
