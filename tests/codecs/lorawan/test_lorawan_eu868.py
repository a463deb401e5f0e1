"""EU868 region data and time on air."""

from __future__ import annotations

import pytest

from havel.codecs.lorawan import airtime, eu868
from havel.errors import InputError


def test_default_channels_and_rx2() -> None:
    assert eu868.DEFAULT_CHANNELS_HZ == (868_100_000, 868_300_000, 868_500_000)
    assert eu868.RX2_FREQ_HZ == 869_525_000 and eu868.RX2_DR == 0
    for freq in eu868.DEFAULT_CHANNELS_HZ:
        assert eu868.subband(freq) == ("868-868.6 MHz", 0.01)
    assert eu868.subband(eu868.RX2_FREQ_HZ)[1] == 0.10


def test_data_rates_and_datr() -> None:
    assert [eu868.DATA_RATES[dr] for dr in range(7)] == [
        (12, 125),
        (11, 125),
        (10, 125),
        (9, 125),
        (8, 125),
        (7, 125),
        (7, 250),
    ]
    for dr in range(7):
        assert eu868.dr_from_datr(eu868.datr(dr)) == dr
    assert eu868.datr(0) == "SF12BW125" and eu868.dr_from_datr("sf7bw250") == 6
    assert eu868.dr_from_datr(50000) == eu868.FSK_DR
    for bad in ("SF6BW125", "SF12BW500", "LORA", 9600):
        with pytest.raises(InputError):
            eu868.dr_from_datr(bad)
    with pytest.raises(InputError):
        eu868.datr(7)
    with pytest.raises(InputError):
        eu868.datr(8)


def test_max_payload_per_dr() -> None:
    assert [eu868.max_app_payload(dr) for dr in range(8)] == [51, 51, 51, 115, 222, 222, 222, 222]
    with pytest.raises(InputError):
        eu868.max_app_payload(8)


def test_rx1_dr_and_tx_power() -> None:
    assert eu868.rx1_dr(5, 0) == 5 and eu868.rx1_dr(5, 2) == 3 and eu868.rx1_dr(1, 5) == 0
    assert [eu868.tx_power_dbm(i) for i in range(8)] == [16, 14, 12, 10, 8, 6, 4, 2]
    with pytest.raises(InputError):
        eu868.rx1_dr(0, 6)


@pytest.mark.parametrize(
    ("freq", "duty"),
    [
        (863_500_000, 0.001),
        (866_000_000, 0.01),
        (868_700_000, 0.001),
        (869_500_000, 0.10),
        (869_850_000, 0.01),
    ],
)
def test_subbands(freq: int, duty: float) -> None:
    assert eu868.subband(freq)[1] == duty


@pytest.mark.parametrize("freq", [433_175_000, 869_300_000, 915_000_000])
def test_subband_outside_eu868(freq: int) -> None:
    with pytest.raises(InputError):
        eu868.subband(freq)


def test_ldro_is_automatic_for_sf11_sf12_at_125_khz() -> None:
    assert [airtime.ldro_needed(sf, 125) for sf in range(7, 13)] == [False] * 4 + [True, True]
    assert not airtime.ldro_needed(11, 250)
    # Automatic equals forcing it on at SF12, and differs from forcing it off.
    auto = eu868.airtime_us(64, 12)
    assert auto == eu868.airtime_us(64, 12, ldro=True) != eu868.airtime_us(64, 12, ldro=False)


def test_airtime_grows_with_size_and_sf() -> None:
    assert eu868.airtime_us(13, 7) < eu868.airtime_us(14 + 20, 7) < eu868.airtime_us(34, 8)
    assert eu868.airtime_us(20, 7, 250) * 2 == pytest.approx(eu868.airtime_us(20, 7, 125), rel=0.01)
    assert eu868.airtime_us(20, 7, crc=False) < eu868.airtime_us(20, 7)


def test_pause_under_duty_cycle() -> None:
    assert airtime.pause_s(2_793_472, 0.01) == pytest.approx(2.793472 * 99)
    with pytest.raises(InputError):
        airtime.pause_s(1000, 0)


@pytest.mark.parametrize("kwargs", [{"sf": 6}, {"sf": 13}, {"bw_khz": 200}, {"phy_len": 256}, {"cr": 5}])
def test_airtime_refuses_bad_parameters(kwargs: dict[str, int]) -> None:
    args = {"phy_len": 20, "sf": 7, "bw_khz": 125}
    args.update(kwargs)
    cr = args.pop("cr", 1)
    with pytest.raises(InputError):
        eu868.airtime_us(args["phy_len"], args["sf"], args["bw_khz"], cr=cr)
