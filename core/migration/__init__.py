"""Moving base64 blobs out of the app's tables into object storage (no Dagster imports here)."""
