"""moto_server with CloudFormation's failure reporting, for the infra tier's failure-halfway test.

moto 5.2.5 runs a change set synchronously and, when one resource's create fails, raises that
resource's error out of ExecuteChangeSet itself: no resource event is recorded, the stack keeps
what it made, and nothing names the logical resource. CloudFormation instead accepts
ExecuteChangeSet and reports through the stack: a CREATE_IN_PROGRESS and a CREATE_COMPLETE event
per resource, a CREATE_FAILED event on the resource that failed with the provider's reason as its
ResourceStatusReason, then the stack's own CREATE_FAILED.

This wrapper makes moto report that way and nothing more. Like moto (and like CloudFormation with
rollback disabled) it does not roll back: the stack is left CREATE_FAILED with what it made, so
the test shows that fedflow's own clean-up (DeleteStack) leaves nothing. Every resource is still
made by moto's own models; only the bookkeeping of events and status is added.

Run as moto_server is: python scripts/moto-cfn-events.py -H 127.0.0.1 -p PORT
(scripts/moto-server.ts starts it with `startMoto(env, { cfnEvents: true })`).
"""

import sys

from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend, Event, cloudformation_backends
from moto.server import main

_create_resource = parsing.parse_and_create_resource


def _stack_of(resources_map):
    backend = cloudformation_backends[resources_map._account_id][resources_map._region_name]
    return backend.stacks.get(resources_map.stack_id)


def _event(stack, logical_id, physical_id, resource_type, status, reason=None):
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=physical_id or "",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def _reason(err):
    """The provider's answer, as CloudFormation quotes it: the service's error code and message."""
    code = getattr(err, "error_type", None) or getattr(err, "code", None) or type(err).__name__
    message = getattr(err, "message", None) or str(err)
    return f'Resource handler returned message: "{message}" (HandlerErrorCode: {code})'


def parse_and_create_resource(logical_id, resource_json, resources_map, account_id, region_name):
    stack = _stack_of(resources_map)
    resource_type = resource_json.get("Type", "")
    if stack is not None:
        _event(stack, logical_id, "", resource_type, "CREATE_IN_PROGRESS")
    try:
        resource = _create_resource(logical_id, resource_json, resources_map, account_id, region_name)
    except Exception as err:
        # A resource is made while its references are resolved, so creates nest: the innermost
        # one that raised is the resource that failed; the ones around it never started.
        if stack is not None and not getattr(err, "_fedflow_failed", None):
            err._fedflow_failed = logical_id
            _event(stack, logical_id, "", resource_type, "CREATE_FAILED", _reason(err))
        raise
    if stack is not None and resource is not None:
        physical = getattr(resource, "physical_resource_id", "")
        _event(stack, logical_id, physical if isinstance(physical, str) else "", resource_type, "CREATE_COMPLETE")
    return resource


_execute_change_set = CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None
    )
    try:
        return _execute_change_set(self, change_set_name, stack_name)
    except Exception as err:
        failed = getattr(err, "_fedflow_failed", None)
        if change_set is None or change_set.change_set_type != "CREATE" or failed is None:
            raise
        # Accepted, as CloudFormation accepts it; the failure is in the stack's status and events.
        stack = self.stacks[change_set.stack_id]
        stack._add_stack_event("CREATE_FAILED", resource_status_reason=f"The following resource(s) failed to create: [{failed}]. ")
        stack.status = "CREATE_FAILED"
        change_set.execution_status = "EXECUTE_FAILED"
        return None


parsing.parse_and_create_resource = parse_and_create_resource
CloudFormationBackend.execute_change_set = execute_change_set

if __name__ == "__main__":
    main(sys.argv[1:])
