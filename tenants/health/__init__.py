"""Tenant and fleet health: CloudWatch metrics, alarms, error lines and one status.

Public entry points:
- ``tenants.health.status.tenant_status(tenant) -> (status, reason)``: healthy, degraded
  or down, for pages and a rollout's verify step;
- ``tenants.health.report.tenant_health_report``: everything the health page shows;
- ``tenants.health.fleet.fleet_table``: the tenant list's health columns;
- ``tenants.health.readings``: what only a worker may read (a tenant database, a master
  secret), cached for the pages, which show its age and never read it themselves.
"""
