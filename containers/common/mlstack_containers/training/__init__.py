"""The training program (``train``) of mlstack's SageMaker training image.

``python -m mlstack_containers.training`` reads the job from the ``/opt/ml`` tree rooted at
``SAGEMAKER_BASE_DIR`` (see :mod:`mlstack_containers.paths`), trains XGBoost and writes the model
with :mod:`mlstack_containers.model_io`. See ``containers/README.md`` for the contract.
"""
