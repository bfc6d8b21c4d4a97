# Sourced by the synth benches: the real `cdk` CLI offline, as the Makefile runs it (no telemetry,
# a region, no instance metadata, no AWS credentials or profile).
export CDK_DISABLE_CLI_TELEMETRY=true AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
