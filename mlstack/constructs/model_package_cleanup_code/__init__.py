"""The model package clean-up function's code (a Lambda asset: ``index.handler``)."""
