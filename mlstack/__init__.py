"""mlstack: AWS CDK constructs and app for a complete Amazon SageMaker workflow."""
