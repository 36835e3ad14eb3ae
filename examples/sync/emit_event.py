"""Emit a user.registered event with the sync client."""

from ventryx_sync import Ventryx

with Ventryx() as client:
    event = client.events.emit(
        type="user.registered",
        data={"user_id": "usr_12345", "email": "jane@example.com", "plan": "pro"},
    )
    print(event.id)
