"""channels.link: noise, SNR, rates, CQI table, airtime and radio energy against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from channels.link import (
    MCS_TABLE_CQI,
    airtime_s,
    attenuated_shannon_rate_bps,
    mcs_rate_bps,
    noise_power_w,
    radio_energy_j,
    shannon_rate_bps,
    snr_linear,
)

# TS 36.213 Table 7.2.3-1, efficiency column, typed in from the spec.
SPEC_CQI_EFF = [0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
                2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547]  # fmt: skip


def test_noise_power_at_1_mhz() -> None:
    # −174 dBm/Hz + 60 dB = −114 dBm = 10^(−14.4) W
    assert noise_power_w(1e6) == pytest.approx(10 ** (-14.4), rel=1e-12)
    assert noise_power_w(1e6, noise_figure_db=9.0) == pytest.approx(10 ** (-10.5 - 3.0), rel=1e-12)  # −105 dBm
    # Physics: k·T0·B at 290 K is −173.975 dBm/Hz, within 0.03 dB of the conventional −174.
    assert 10 * math.log10(noise_power_w(1e6) / (1.380649e-23 * 290.0 * 1e6)) == pytest.approx(-0.025, abs=0.005)
    np.testing.assert_allclose(noise_power_w(np.array([1e6, 1e7])), [10 ** (-14.4), 10 ** (-13.4)])


def test_noise_rejects_bad_bandwidth() -> None:
    with pytest.raises(ValueError, match="bandwidth_hz"):
        noise_power_w(-1e6)
    with pytest.raises(ValueError, match="bandwidth_hz"):
        noise_power_w(0.0)


def test_snr() -> None:
    assert snr_linear(1.0, 1e-9, 1e-14) == pytest.approx(1e5)
    np.testing.assert_allclose(snr_linear(0.2, np.array([1e-10, 1e-12]), 1e-13), [200.0, 2.0])
    with pytest.raises(ValueError, match="noise_w"):
        snr_linear(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="gain_linear"):
        snr_linear(1.0, -1.0, 1.0)


def test_shannon_rate() -> None:
    assert shannon_rate_bps(1e6, 1.0) == pytest.approx(1e6)  # log2(2) = 1
    assert shannon_rate_bps(2e6, 3.0) == pytest.approx(4e6)  # log2(4) = 2
    assert shannon_rate_bps(1e6, 0.0) == 0.0
    np.testing.assert_allclose(shannon_rate_bps(1e6, np.array([1.0, 3.0, 7.0])), [1e6, 2e6, 3e6])
    with pytest.raises(ValueError, match="bandwidth_hz"):
        shannon_rate_bps(-1.0, 1.0)
    with pytest.raises(ValueError, match="snr_linear"):
        shannon_rate_bps(1e6, -1.0)


def test_shannon_rate_cap() -> None:
    assert shannon_rate_bps(1e6, 1023.0, rate_cap_bps=4e6) == pytest.approx(4e6)  # uncapped 10 Mbit/s
    assert shannon_rate_bps(1e6, 1.0, rate_cap_bps=4e6) == pytest.approx(1e6)
    np.testing.assert_allclose(shannon_rate_bps(1e6, np.array([1.0, 1023.0]), 4e6), [1e6, 4e6])
    with pytest.raises(ValueError, match="rate_cap_bps"):
        shannon_rate_bps(1e6, 1.0, rate_cap_bps=0.0)


def test_attenuated_shannon_tr36942() -> None:
    b = 1e6
    assert attenuated_shannon_rate_bps(b, 10 ** (-1.1)) == 0.0  # −11 dB < −10 dB
    snr = 10 ** 0.5  # 5 dB
    assert attenuated_shannon_rate_bps(b, snr) == pytest.approx(b * 0.6 * math.log2(1 + snr))
    assert attenuated_shannon_rate_bps(b, 10 ** 3.0) == pytest.approx(4.4 * b)  # 30 dB: truncated
    assert attenuated_shannon_rate_bps(b, 10 ** 3.0, alpha=0.4, max_eff=2.0) == pytest.approx(2.0 * b)  # uplink


def test_cqi_table_is_the_spec_and_monotone() -> None:
    assert MCS_TABLE_CQI.shape == (15, 2)
    np.testing.assert_array_equal(MCS_TABLE_CQI[:, 1], SPEC_CQI_EFF)
    assert np.all(np.diff(MCS_TABLE_CQI[:, 0]) > 0)
    assert np.all(np.diff(MCS_TABLE_CQI[:, 1]) > 0)
    # Documented thresholds: attenuated Shannon with α = 0.6 reaching each efficiency.
    for (th_db, eff) in MCS_TABLE_CQI:
        assert th_db == pytest.approx(10 * math.log10(2 ** (eff / 0.6) - 1))
    assert MCS_TABLE_CQI[0, 0] == pytest.approx(-7.16, abs=0.01)
    assert MCS_TABLE_CQI[14, 0] == pytest.approx(27.87, abs=0.01)
    with pytest.raises(ValueError):
        MCS_TABLE_CQI[0, 0] = 0.0  # read-only


def test_mcs_rate() -> None:
    b = 1e6
    assert mcs_rate_bps(b, 0.0) == 0.0
    assert mcs_rate_bps(b, 10 ** (-8 / 10)) == 0.0  # below CQI 1 (−7.16 dB)
    assert mcs_rate_bps(b, 10 ** (-7 / 10)) == pytest.approx(0.1523e6)
    assert mcs_rate_bps(b, 10 ** (12 / 10)) == pytest.approx(2.4063e6)  # CQI 9 at 11.3 dB, CQI 10 at 13.0 dB
    assert mcs_rate_bps(b, 1e6) == pytest.approx(5.5547e6)
    snr = np.logspace(-2, 4, 400)
    r = mcs_rate_bps(b, snr)
    assert r.shape == (400,)
    assert np.all(np.diff(r) >= 0)
    assert np.all(r <= shannon_rate_bps(b, snr))
    custom = np.array([[0.0, 1.0], [10.0, 2.0]])
    np.testing.assert_allclose(mcs_rate_bps(b, np.array([0.5, 1.0, 9.9, 10.0]), custom), [0, 1e6, 1e6, 2e6])
    with pytest.raises(ValueError, match="table"):
        mcs_rate_bps(b, 1.0, np.array([1.0, 2.0]))


def test_airtime() -> None:
    assert airtime_s(48e6, 1e6) == pytest.approx(48.0)  # a 6 MB model at 1 Mbit/s
    assert airtime_s(8e6, 0.0) == math.inf
    assert airtime_s(0.0, 0.0) == 0.0
    np.testing.assert_allclose(airtime_s(np.array([1e6, 2e6, 1.0]), np.array([1e6, 4e6, 0.0])), [1.0, 0.5, np.inf])
    with pytest.raises(ValueError, match="payload_bits"):
        airtime_s(-1.0, 1e6)
    with pytest.raises(ValueError, match="rate_bps"):
        airtime_s(1.0, -1e6)


def test_radio_energy() -> None:
    assert radio_energy_j(0.6, 10.0) == pytest.approx(6.0)
    assert radio_energy_j(0.8, 12.1) == pytest.approx(9.68)
    assert radio_energy_j(0.0, math.inf) == 0.0
    np.testing.assert_allclose(radio_energy_j(np.array([1.0, 0.2]), 2.0), [2.0, 0.4])
    with pytest.raises(ValueError, match="power_w"):
        radio_energy_j(-1.0, 1.0)


def test_end_to_end_paper_uplink() -> None:
    # β0 = −30 dB, α = 3, 500 m: gain = −30 − 30·log10(500) dB; 1 W, 1 MHz, −114 dBm noise.
    gain_db = -30 - 30 * math.log10(500.0)
    snr_db = 30 + gain_db - (-114)
    rate = 1e6 * math.log2(1 + 10 ** (snr_db / 10))
    got = shannon_rate_bps(1e6, snr_linear(1.0, 10 ** (gain_db / 10), noise_power_w(1e6)))
    assert got == pytest.approx(rate)
    assert airtime_s(48e6, got) == pytest.approx(48e6 / rate)
