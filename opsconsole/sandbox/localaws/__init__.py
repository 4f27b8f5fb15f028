"""The sandbox's local AWS: moto's server plus what moto lacks.

One WSGI process (``python -m opsconsole.sandbox.localaws``). moto answers every AWS API;
the extensions in this package sit in front of it or inside its backends and add the
behaviour a console needs to be tested against something faithful:

- Lambda runs the function's code: ``lambda_invoke`` (the Invoke API, aliases and their
  weights, throttling), ``lambda_executor`` (warm execution environments per version),
  ``lambda_environment`` (one environment's process and what it sees), ``lambda_code``
  (unpacked zips and layers), ``runtime_api`` (the Lambda Runtime API a ``bootstrap`` or
  ``awslambdaric`` talks to), ``lambda_images`` (container images pushed here),
  ``lambda_telemetry`` (START/END/REPORT logs and AWS/Lambda metrics);
- ``apigw_proxy`` / ``apigw_routes`` / ``apigw_events``: tenants' HTTP APIs answer real HTTP
  at ``/_aws/execute-api/<api-id>/`` (payload 1.0 and 2.0, by stage), with the API's
  CORS (``apigw_cors``), its stage's throttling (``apigw_throttle``) and access logs
  (``apigw_access_log``); ``apigw_endpoint``: the ApiEndpoint each API reports is that
  address; ``apigw_ext``: UpdateStage, DeleteAccessLogSettings and UpdateApiMapping;
- ``cloudwatch_ext`` / ``alarm_evaluator``: percentile statistics, and metric alarms
  evaluated every minute as CloudWatch does;
- ``sns_delivery``: HTTP(S) subscriptions confirm (SubscriptionConfirmation, SubscribeURL)
  before they get notifications, delivered as SNS delivers them;
- ``rds_ext``: RDS endpoints are the local PostgreSQL's address, and creating an instance
  or cluster creates its master role and database there.

The console never imports this package: it reaches the process through
``AWS_ENDPOINT_URL`` only, exactly as it reaches real AWS.
"""
