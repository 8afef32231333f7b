from rdkit import rdBase

from molgen.chem import Policy, Status, canonicalize, quiet_rdkit, standardize


def test_salts_and_mixtures_keep_the_largest_fragment():
    assert canonicalize("CC(=O)[O-].[Na+]") == "CC(=O)[O-]"
    assert canonicalize("c1ccccc1CN.Cl") == "NCc1ccccc1"
    # solvent that is larger than the drug would win: largest fragment is a documented rule
    assert canonicalize("O.O.CCO") == "CCO"


def test_fragment_stripping_can_be_switched_off():
    assert canonicalize("CCN.Cl", Policy(largest_fragment=False)) == "CCN.Cl"


def test_charges_are_kept_by_default_and_neutralized_on_request():
    assert canonicalize("CC(=O)[O-]") == "CC(=O)[O-]"
    assert canonicalize("CC(=O)[O-]", Policy(neutralize=True)) == "CC(=O)O"
    # a quaternary ammonium has no neutral form and stays charged
    assert canonicalize("C[N+](C)(C)C", Policy(neutralize=True)) == "C[N+](C)(C)C"


def test_isotopes_kept_or_removed():
    assert canonicalize("[13CH3]O") == "[13CH3]O"
    assert canonicalize("[13CH3]O", Policy(keep_isotopes=False)) == "CO"


def test_stereo_kept_by_default_and_dropped_by_flag():
    s = "C[C@H](N)C(=O)O"
    assert canonicalize(s) == "C[C@H](N)C(=O)O"
    assert canonicalize(s, Policy(keep_stereo=False)) == "CC(N)C(=O)O"
    assert canonicalize("C/C=C/C", Policy(keep_stereo=False)) == "CC=CC"
    assert canonicalize("C/C=C/C") == "C/C=C/C"


def test_aromatic_and_kekule_forms_agree():
    assert canonicalize("C1=CC=CC=C1") == canonicalize("c1ccccc1") == "c1ccccc1"
    assert canonicalize("OCC") == canonicalize("C(O)C") == "CCO"


def test_garbage_never_raises_and_reports_a_status():
    for bad in ["", "   ", None, 42, "C1CC", "c1cccc1", "C(C", "Xx", "[Na+"]:
        assert standardize(bad) == (None, Status.INVALID), bad
    assert standardize("C" * 20_000) == (None, Status.TOO_LONG)
    assert standardize("OCC") == ("CCO", Status.OK)


def test_quiet_rdkit_restores_previous_log_state():
    before = rdBase.LogStatus()
    with quiet_rdkit():
        assert "rdApp.error:disabled" in rdBase.LogStatus()
    assert rdBase.LogStatus() == before
    rdBase.DisableLog("rdApp.warning")
    try:
        with quiet_rdkit():
            pass
        assert "rdApp.warning:disabled" in rdBase.LogStatus()
    finally:
        rdBase.EnableLog("rdApp.warning")


def test_policy_round_trips_through_dict():
    p = Policy(keep_stereo=False, neutralize=True)
    assert Policy.from_dict(p.to_dict()) == p
    assert p.key != Policy().key
