"""Create the Examples page's "User onboarding" workflow with the sync client."""

from ventryx_sync import Ventryx

with Ventryx() as client:
    workflow = client.workflows.create(
        name="User onboarding",
        trigger={"event": "user.registered"},
        steps=[{"type": "send_notification", "channel": "email", "template": "welcome"}],
    )
    print("Created workflow:", workflow.id)
