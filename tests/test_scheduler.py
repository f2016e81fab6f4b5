"""The scheduling policy of RayMap, without Ray: order, cost, load, pipelining, the tail, affinity, retries."""

import pytest

from pbt_evo.parallel.scheduler import Job, Scheduler


def drain(s: Scheduler) -> list[tuple[int, int]]:
    out = []
    while (pick := s.next()) is not None:
        out.append(pick)
    return out


def test_costliest_first_each_to_the_least_loaded_worker_pipelined():
    s = Scheduler(workers=2, pipeline=2)
    for ticket, cost in enumerate([1.0, 5.0, 2.0, 4.0, 3.0, 0.5], start=1):
        s.add(ticket, Job(cost))
    # 6 calls > 2 workers: up to 2 in flight each; costliest first, each to the worker with least queued
    assert drain(s) == [(2, 0), (4, 1), (5, 1), (3, 0)]
    assert [(slot.inflight, slot.queued) for slot in s.slots] == [(2, 7.0), (2, 7.0)]
    assert s.queue == [1, 6]  # the tail (last `workers` calls) waits for an idle worker
    s.release(2)
    assert drain(s) == []  # worker 0 still runs call 3: the tail goes only to idle workers
    s.remove(2)
    s.release(3), s.remove(3)
    assert drain(s) == [(1, 0)]


def test_order_ranks_before_cost_and_equal_ranks_keep_submission_order():
    s = Scheduler(workers=1, pipeline=1)
    s.add(1, Job(1.0, order=1))   # an early start of the next generation
    s.add(2, Job(0.5, order=0))
    s.add(3, Job(0.5, order=0))
    s.add(4, Job(9.0, order=1))
    assert s.queue == [2, 3, 4, 1]


def test_affinity_prefers_the_worker_keeping_the_member_and_looks_a_few_calls_ahead():
    s = Scheduler(workers=2, pipeline=1)
    s.add(1, Job(3.0, home=1))
    s.add(2, Job(2.0, home=0))
    s.add(3, Job(1.0))
    s.add(4, Job(1.0))
    # call 1 (head) goes to its home worker 1 among equally idle workers; worker 0 then takes call 2,
    # whose member it keeps, rather than the next by cost
    assert s.next() == (1, 1) and s.next() == (2, 0)


def test_a_failed_call_is_retried_first_on_another_worker_then_anywhere():
    s = Scheduler(workers=2, pipeline=1)
    s.add(1, Job(1.0))
    s.add(2, Job(2.0))
    assert drain(s) == [(2, 0), (1, 1)]
    s.release(2)
    s.retry(2, failed_on=0)
    assert s.queue == [2] and s.next() is None  # worker 1 is busy and it may not run on 0 again
    s.release(1), s.remove(1)
    assert s.next() == (2, 1)
    s.release(2)
    s.retry(2, failed_on=1)
    assert s.next() == (2, 0)  # failed on every worker: it may run anywhere


def test_drop_frees_a_running_calls_worker():
    s = Scheduler(workers=1, pipeline=1)
    s.add(1, Job(1.0))
    s.add(2, Job(1.0))
    assert s.next() == (1, 0) and s.next() is None
    assert [t for t, _ in s.drop([1, 7])] == [1]
    assert s.next() == (2, 0) and list(s.jobs) == [2]


@pytest.mark.parametrize("workers, pipeline", [(0, 1), (1, 0)])
def test_bad_arguments(workers, pipeline):
    with pytest.raises(ValueError, match="must be >= 1"):
        Scheduler(workers, pipeline)


def test_the_generations_tail_is_not_pipelined_when_early_starts_are_queued_behind_it():
    s = Scheduler(workers=2, pipeline=2)
    for ticket, cost in enumerate([4.0, 3.0, 2.0, 1.0], start=1):
        s.add(ticket, Job(cost, order=0))
    for ticket in (5, 6, 7):
        s.add(ticket, Job(1.0, order=1))  # early starts of the next generation
    # 7 calls queued, but only 4 of this generation: its last 2 wait for an idle worker, early starts too
    assert drain(s) == [(1, 0), (2, 1)]
    s.release(2), s.remove(2)
    assert drain(s) == [(3, 1)]  # 1 call of this generation left: idle workers only
    s.release(3), s.remove(3)
    # then the early starts, 3 queued > 2 workers: pipelined again (behind this generation's last call)
    assert drain(s) == [(4, 1), (5, 1)]
