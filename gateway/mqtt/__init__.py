"""The gateway's one MQTT integration: :class:`MqttClient`, paho-mqtt's public API in an asyncio loop.

::

    client = MqttClient(settings, name="sink platform", client_id="havel-gw1-platform")
    client.subscribe("havel/gw1/devices/+/down", handler)
    await client.start()
"""

from __future__ import annotations

from havel.gateway.mqtt.client import MqttClient
from havel.gateway.mqtt.connection import Will, configure, describe_error
from havel.gateway.mqtt.loopthread import LoopThread

__all__ = ["LoopThread", "MqttClient", "Will", "configure", "describe_error"]
