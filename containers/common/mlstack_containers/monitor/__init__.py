"""The ``monitor`` program: drift and model quality of an endpoint's captured traffic."""
