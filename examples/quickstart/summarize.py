"""Build a summary: how many patients, where they live, their ages, what was rejected."""

import collections
import statistics


@fn
def summarize(state):
    patients = state["data"]["patients"]
    ages = [patient["age"] for patient in patients]
    by_district = collections.Counter(patient["district"] for patient in patients)
    summary = {
        "patients": len(patients),
        "by_district": dict(sorted(by_district.items())),
        "age": {"min": min(ages), "max": max(ages), "mean": round(statistics.mean(ages), 1)},
        "first_visit": min(patient["visit_date"] for patient in patients),
        "last_visit": max(patient["visit_date"] for patient in patients),
        "rejected": state["data"]["rejected"],
    }
    return {**state, "data": summary}
