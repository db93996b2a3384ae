"""The original design's registry sync, for comparison: per model, the
MLflow Python client's get_latest_versions and transition_model_version_stage
(EnterpriseModelRegistry.promote_to_production / ModelRollback.rollback_to_version),
applied to staging and prod. dev has no stage in that design.

usage: python seed_approach.py TRACKING_URI MODELS_FILE
MODELS_FILE: one line per model: "<name> <staging version> <prod version>".
Prints the wall time in seconds.
"""
import sys
import time
import warnings

from mlflow.tracking import MlflowClient

warnings.filterwarnings("ignore")


def promote(client, name, version, stage):
    current = client.get_latest_versions(name, stages=[stage])
    if current and current[0].version != str(version):
        client.transition_model_version_stage(name=name, version=current[0].version, stage="Archived")
    client.transition_model_version_stage(name=name, version=str(version), stage=stage)


def main():
    uri, models_file = sys.argv[1], sys.argv[2]
    client = MlflowClient(tracking_uri=uri)
    models = [line.split() for line in open(models_file) if line.strip()]
    start = time.monotonic()
    for name, staging, prod in models:
        promote(client, name, int(staging), "Staging")
        promote(client, name, int(prod), "Production")
    print(f"{time.monotonic() - start:.3f}")


if __name__ == "__main__":
    main()
