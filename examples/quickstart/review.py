"""Explain each rejected row in the log, so someone can fix the source file."""


@fn
def review(state):
    for rejected in state["data"]["rejected"]:
        print(f"row {rejected['id']} needs fixing: {rejected['reason']}")
    return state
