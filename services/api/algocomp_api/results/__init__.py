"""Results: a succeeded run's summary and its files on S3 (streamed through the API or by presigned URL)."""
