"""The sandbox's local AWS: moto's server plus what moto lacks.

One WSGI process (``python -m opsconsole.sandbox.localaws``). moto answers every AWS API;
the extensions in this package sit in front of it or inside its backends and add the
behaviour a console needs to be tested against something faithful:

- ``lambda_invoke`` / ``lambda_executor`` / ``runtime_api``: Invoke runs the function's
  code (zip ``bootstrap`` through the Lambda Runtime API, Python handlers through
  ``awslambdaric``), with timeouts, reserved concurrency, alias weights, logs and metrics;
- ``apigw_proxy``: tenants' HTTP APIs answer real HTTP at ``/_aws/execute-api/<api-id>/``;
- ``cloudwatch_ext``: percentile statistics and metric alarms evaluated every minute;
- ``rds_ext``: RDS endpoints are the local PostgreSQL's address, and creating an instance
  or cluster creates its master role and database there.

The console never imports this package: it reaches the process through
``AWS_ENDPOINT_URL`` only, exactly as it reaches real AWS.
"""
