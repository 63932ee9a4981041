"""Numpy frames without copies: the producer renders each frame straight
into its slot (reserve), the consumer views it in place (Message.data).

    python python/examples/numpy_frames.py
"""

import multiprocessing
import shutil
import tempfile

import numpy as np

import shmq

SHAPE, DTYPE = (480, 640), np.uint8  # one grey 640x480 frame: 300 KiB
FRAMES = 200


def camera(qdir):
    q = shmq.Queue.open("frames", dir=qdir)
    nbytes = int(np.prod(SHAPE)) * np.dtype(DTYPE).itemsize
    with q.producer() as p:
        for i in range(FRAMES):
            with p.reserve(nbytes, type_id=i) as slot:  # committed on exit
                frame = np.frombuffer(slot, dtype=DTYPE).reshape(SHAPE)
                frame[:] = i % 256  # "render" into shared memory
                frame[0, 0] = 255
                del frame  # the slot's buffer must be let go before commit


def main():
    qdir = tempfile.mkdtemp(prefix="shmq-example-")
    q = shmq.Queue.create("frames", dir=qdir, slots=16, slot_size=480 * 640)
    q.create_group("viewer")
    cam = multiprocessing.get_context("spawn").Process(target=camera, args=(qdir,))
    cam.start()
    means = []
    with q.consumer("viewer") as c:
        for _ in range(FRAMES):
            m = c.receive(timeout=10)
            frame = np.frombuffer(m.data, dtype=DTYPE).reshape(SHAPE)  # no copy
            assert frame[0, 0] == 255 and frame[1, 1] == m.type_id % 256
            means.append(float(frame.mean()))
            del frame  # let the view go: the next receive releases the slot
    cam.join(30)
    print(f"{len(means)} frames of {SHAPE} viewed in place; mean of the last: {means[-1]:.2f}")
    q.close()
    shutil.rmtree(qdir)


if __name__ == "__main__":
    main()
