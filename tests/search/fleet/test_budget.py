"""The study-wide budget: slots claimed right after ``ask``, so processes asking at once never
evaluate more than ``max_trials``, and the wall clock every process agrees on."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from mergekit_evo.search.fleet.budget import OVER_BUDGET, Slots, StageClock, claim, counted
from mergekit_evo.search.fleet.recovery import recover_interrupted
from mergekit_evo.search.fleet.storage import make_storage

DIST = {"x": FloatDistribution(0, 1)}


def _two_processes(tmp_path):
    """Two storages on one journal file: what two worker processes of a host see."""
    path = str(tmp_path / "study.journal")
    a = optuna.create_study(
        storage=make_storage(path), study_name="t", direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip
    b = optuna.load_study(
        study_name="t", storage=make_storage(path), sampler=optuna.samplers.RandomSampler(seed=1)
    )
    return a, b


def test_processes_racing_for_the_last_slot_evaluate_exactly_the_budget(tmp_path):
    a, b = _two_processes(tmp_path)
    done = a.ask(DIST)
    a.tell(done, 0.5)
    # budget 3: one done, so both processes see a free slot and both ask
    assert Slots.of(a.get_trials(), 3).can_ask() and Slots.of(b.get_trials(), 3).can_ask()
    ta, tb = a.ask(DIST), b.ask(DIST)
    tc = a.ask(DIST)
    assert claim(a, ta, 3) and claim(b, tb, 3)
    assert not claim(a, tc, 3)  # the third asker of two free slots gives its trial back
    back = a.get_trials()[tc.number]
    assert back.state == TrialState.FAIL and back.user_attrs[OVER_BUDGET]
    slots = Slots.of(b.get_trials(), 3)
    assert not slots.can_ask()  # every slot is held (two still running): wait, do not ask
    assert slots.done == 1 and counted(b.get_trials())[0] == 1  # given back: never counted
    b.tell(tb, 0.7)
    a.tell(ta, 0.6)
    assert counted(a.get_trials()) == (3, [0.5, 0.6, 0.7])


def test_a_dead_trial_frees_its_slot_for_its_retry(tmp_path):
    a, b = _two_processes(tmp_path)
    for v in (0.1, 0.2):
        t = a.ask(DIST)
        a.tell(t, v)
    dead = b.ask(DIST)  # b dies holding the last slot of a budget of 3
    assert claim(b, dead, 3)
    assert not Slots.of(a.get_trials(), 3).can_ask()
    assert recover_interrupted(a, all_running=True) == [dead.number]
    slots = Slots.of(a.get_trials(), 3)
    assert slots.can_ask() and slots.done == 2
    retry = a.ask(DIST)  # pops the queued retry: same point, within the budget
    assert claim(a, retry, 3)
    assert retry.params == a.get_trials()[dead.number].params
    assert a.get_trials()[retry.number].user_attrs["retry_of"] == dead.number


def test_a_queued_trial_given_back_stays_queued(tmp_path):
    a, b = _two_processes(tmp_path)
    t = a.ask(DIST)
    a.tell(t, 0.3)
    a.enqueue_trial({"x": 0.25}, user_attrs={"polish": "flip 3"})
    # budget 1 is spent: the queued move lies beyond it
    assert not Slots.of(b.get_trials(), 1).can_ask()
    popped = b.ask(DIST)  # a process that asked anyway (it checked before the budget shrank)
    assert popped.params == {"x": 0.25}
    assert not claim(b, popped, 1)
    waiting = a.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].system_attrs["fixed_params"] == {"x": 0.25}
    assert waiting[0].user_attrs["polish"] == "flip 3"


def test_the_wall_clock_is_the_largest_any_process_published(tmp_path):
    a, b = _two_processes(tmp_path)
    early = StageClock(a, offset_s=5.0)
    a.set_user_attr("wall_s", 100.0)  # what a process running for longer published
    late = StageClock(b)
    assert late.stage_s() >= 100.0  # a late joiner starts from the study's clock
    assert early.elapsed_s() >= 105.0  # and the early one sees it too (plus earlier stages)
    late.publish()
    assert a.user_attrs["wall_s"] >= 100.0
