"""Feast's own client against a `lockstep serve`.

Usage: client.py REPO CASES.json

REPO is a Feast repository (feature_store.yaml with `online_store: {type: remote}`) already
applied with `feast apply`; each case of CASES.json is asked through
`FeatureStore.get_online_features`, exactly as a Feast user asks, and printed as one JSON
document on stdout: per case the feature names, the Python values Feast gives, the kind of
protobuf value Feast made of each, and the statuses, or the Feast error raised.

A case is {"name", "features": [...] | "feature_service": "...", "entity_rows": [{...}] |
{"column": [...]}, "full_feature_names": bool}.
"""

import json
import sys

from feast import FeatureStore
from feast.errors import FeastError
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus


def ask(store: FeatureStore, case: dict) -> dict:
    if "feature_service" in case:
        features = store.get_feature_service(case["feature_service"])
    else:
        features = case["features"]
    try:
        response = store.get_online_features(
            features=features,
            entity_rows=case["entity_rows"],
            full_feature_names=case.get("full_feature_names", False),
        )
    except FeastError as error:
        return {
            "name": case["name"],
            "error": {
                "class": type(error).__name__,
                "module": type(error).__module__,
                "message": str(error),
            },
        }
    names = list(response.proto.metadata.feature_names.val)
    columns = response.to_dict()
    return {
        "name": case["name"],
        "feature_names": names,
        "values": [columns[name] for name in names],
        "kinds": [
            [value.WhichOneof("val") for value in result.values]
            for result in response.proto.results
        ],
        "statuses": [
            [FieldStatus.Name(status) for status in result.statuses]
            for result in response.proto.results
        ],
    }


def main() -> None:
    repo, cases_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as file:
        cases = json.load(file)
    store = FeatureStore(repo_path=repo)
    json.dump([ask(store, case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
