"""The simulated city: air temperature over the day, a heat wave, and a river that floods.

Pure functions of simulated time (seconds since the simulation's start, which is ``start_hour`` o'clock on
its first day). Deterministic apart from the small noise callers add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """Scenario parameters. Defaults: a summer day from 06:00 with a heat wave building over the first
    hours (afternoon peak ~35 Cel) and a flood that lifts the river from 1.5 m past the alarm levels."""

    start_hour: float = 6.0
    mean_c: float = 21.0  # daily mean before the heat wave
    amplitude_c: float = 6.0  # half the day/night swing
    heat_wave_c: float = 8.0  # extra mean at the heat wave's height
    heat_wave_start_s: float = 0.0
    heat_wave_ramp_s: float = 6 * 3600.0
    river_base_cm: float = 150.0  # level above gauge zero
    flood_rise_cm: float = 380.0  # extra level at the flood's crest
    flood_start_s: float = 2 * 3600.0
    flood_ramp_s: float = 6 * 3600.0
    alarm_levels_cm: tuple[float, float, float] = (300.0, 400.0, 500.0)
    sensor_height_mm: int = 6500  # ultrasonic sensor above gauge zero

    def hour(self, t_s: float) -> float:
        """Local hour of day at simulated time ``t_s``."""
        return (self.start_hour + t_s / 3600.0) % 24.0

    def _ramp(self, t_s: float, start: float, length: float) -> float:
        x = min(max((t_s - start) / length, 0.0), 1.0)
        return x * x * (3 - 2 * x)  # smoothstep: weather does not jump

    def air_c(self, t_s: float) -> float:
        """Outside air temperature: a sine, minimum at 05:00 and maximum at 17:00, plus the heat wave."""
        h = self.hour(t_s)
        daily = -math.cos(2 * math.pi * (h - 5.0) / 24.0)
        return (
            self.mean_c
            + self.heat_wave_c * self._ramp(t_s, self.heat_wave_start_s, self.heat_wave_ramp_s)
            + self.amplitude_c * daily
        )

    def surface_c(self, t_s: float) -> float:
        """A sunlit pavement probe: lags and exceeds the air in the afternoon."""
        h = self.hour(t_s)
        sun = max(0.0, math.sin(math.pi * (h - 7.0) / 12.0))
        return self.air_c(t_s - 1800) + 9.0 * sun

    def humidity(self, t_s: float) -> float:
        """Relative humidity, high at night and low in the heat."""
        return max(15.0, min(95.0, 95.0 - 2.2 * (self.air_c(t_s) - 10.0)))

    def river_cm(self, t_s: float) -> float:
        """River level above gauge zero."""
        return self.river_base_cm + self.flood_rise_cm * self._ramp(
            t_s, self.flood_start_s, self.flood_ramp_s
        )

    def river_rate_cm_h(self, t_s: float) -> float:
        """How fast the river rises (cm per hour)."""
        return (self.river_cm(t_s + 900) - self.river_cm(t_s - 900)) * 2.0
