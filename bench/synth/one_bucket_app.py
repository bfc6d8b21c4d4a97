"""Baseline for the synth benchmark: an app with one S3 bucket and nothing else."""

from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3

app = App()
s3.Bucket(Stack(app, "OneBucket"), "Bucket")
app.synth()
