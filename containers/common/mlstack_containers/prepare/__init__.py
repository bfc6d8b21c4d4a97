"""``prepare``: a user's CSV or Parquet table into the schema and the train/validation/test
shards (a SageMaker Processing job's program; see :mod:`.program`)."""
