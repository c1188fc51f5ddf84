"""The doorbell: rings of one moment reach the queue as one message, after the commit only."""

import time

import pytest

from webapp import worker
from webapp.domain import jobs
from webapp.domain.transaction import atomic


@pytest.fixture
def queue(app):
    worker.doorbell.flush()  # rings an earlier test left gathering
    worker.huey.storage.flush_all()
    yield worker.huey
    worker.huey.storage.flush_all()


def rung(queue) -> list[list[int]]:
    return [task.args[0] for task in queue.pending() if task.name.endswith("run_jobs")]


def wait_for_rings(queue, timeout: float = 5.0) -> list[list[int]]:
    deadline = time.monotonic() + timeout
    while not rung(queue) and time.monotonic() < deadline:
        time.sleep(0.01)
    return rung(queue)


def test_rings_gathered_go_as_one_message_per_batch(queue):
    bell = worker.Doorbell()
    ids = list(range(1, bell.BATCH * 2 + 6))
    for job_id in ids:
        bell.ring(job_id)
    bell.flush()
    batches = rung(queue)
    assert batches == [ids[: bell.BATCH], ids[bell.BATCH : 2 * bell.BATCH], ids[2 * bell.BATCH :]]


def test_a_committed_job_is_rung_by_the_thread_without_anyone_flushing(queue):
    with atomic():
        assert jobs.record("mail", "doorbell:committed", {"message": "none"})
    assert len(wait_for_rings(queue)) == 1
    (job_id,) = rung(queue)[0]
    assert jobs.run(job_id) is not None  # the id rung is the job's


def test_a_doorbell_in_a_forked_child_starts_clean(queue):
    import os

    bell = worker.Doorbell()
    bell.ring(1)  # a thread and a waiting ring in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's waits, and its own thread starts
        inherited = len(bell._waiting)
        bell.ring(2)
        alive = bell._thread is not None and bell._thread.is_alive()
        os.write(write, f"{inherited},{alive}".encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 64).decode() == "0,True" and status == 0
    bell.flush()


def test_a_rolled_back_job_is_never_rung(queue):
    with pytest.raises(RuntimeError), atomic():
        jobs.record("mail", "doorbell:rolled-back", {"message": "none"})
        raise RuntimeError("the cause failed")
    time.sleep(worker.Doorbell.GATHER_SECONDS * 4)
    assert rung(queue) == []
