"""The media hub never blocks the publisher: bounded queues that drop whole GOPs and count."""

from __future__ import annotations

import asyncio

from owncast_fast.media.hub import MediaHub, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.units import AccessUnit, Track

VIDEO = TrackConfig(Track.VIDEO, "avc1", "avc1.64001f", b"\x01")
AUDIO = TrackConfig(Track.AUDIO, "mp4a", "mp4a.40.2", b"\x12\x10")


def video(n: int, keyframe: bool, size: int = 100) -> AccessUnit:
    return AccessUnit(Track.VIDEO, n * 3000, n * 3000, keyframe, bytes(size))


def audio(n: int) -> AccessUnit:
    return AccessUnit(Track.AUDIO, n * 1920, n * 1920, True, bytes(10))


def drain(consumer) -> list:  # type: ignore[no-untyped-def]
    items = []
    while (item := consumer.get_nowait()) is not None:
        items.append(item)
    return items


def test_fan_out_in_order_to_every_consumer() -> None:
    hub = MediaHub()
    a, b = hub.attach("a"), hub.attach("b")
    hub.start()
    hub.set_config(VIDEO)
    hub.set_config(VIDEO)  # unchanged config is not repeated
    units = [video(0, True), video(1, False)]
    for unit in units:
        hub.push(unit)
    hub.end("done")
    expected = [StreamStart(), VIDEO, *units, StreamEnd("done")]
    assert drain(a) == expected and drain(b) == expected


def test_full_queue_drops_until_the_next_keyframe_and_counts() -> None:
    hub = MediaHub()
    slow = hub.attach("slow", max_units=5, max_bytes=10**9)
    hub.start()
    hub.set_config(VIDEO)
    for n in range(3):
        hub.push(video(n, n == 0))  # queue: start, config, 3 units = 5
    hub.push(video(3, False))  # full: dropped, GOP dropping begins
    assert drain(slow)[-1] == video(2, False)
    hub.push(video(4, False))  # still dropping: not a keyframe
    hub.push(video(5, True))  # resumes here
    hub.push(video(6, False))
    assert drain(slow) == [video(5, True), video(6, False)]
    assert (slow.dropped_gops, slow.dropped_units) == (1, 2)


def test_byte_bound_applies_too() -> None:
    hub = MediaHub()
    slow = hub.attach("slow", max_units=10**6, max_bytes=250)
    hub.start()
    hub.push(video(0, True, size=200))
    hub.push(video(1, False, size=100))
    assert slow.queued_bytes == 200 and slow.dropped_units == 1


def test_audio_only_streams_resume_on_any_audio_unit() -> None:
    hub = MediaHub()
    slow = hub.attach("slow", max_units=3, max_bytes=10**9)
    hub.start()
    hub.set_config(AUDIO)
    hub.push(audio(0))
    hub.push(audio(1))  # dropped (start, config, a0 fill the queue)
    drain(slow)
    hub.push(audio(2))
    assert drain(slow) == [audio(2)]


def test_late_consumer_gets_start_and_configs_then_waits_for_a_keyframe() -> None:
    hub = MediaHub()
    hub.start()
    hub.set_config(VIDEO)
    hub.set_config(AUDIO)
    hub.push(video(0, True))
    late = hub.attach("late")
    hub.push(video(1, False))
    hub.push(video(2, True))
    assert drain(late) == [StreamStart(), VIDEO, AUDIO, video(2, True)]


def test_new_stream_resets_dropping_and_detach_stops_delivery() -> None:
    hub = MediaHub()
    c = hub.attach("c", max_units=2, max_bytes=10**9)
    hub.start()
    hub.push(video(0, True))
    hub.push(video(1, False))  # dropped: start + v0 fill it
    drain(c)
    hub.end("bye")
    assert drain(c) == [StreamEnd("bye")]
    hub.start()
    hub.push(video(2, False))  # accepted: a new stream starts fresh
    assert drain(c) == [StreamStart(), video(2, False)]
    hub.detach(c)
    hub.push(video(3, True))
    assert drain(c) == [] and c.closed


def test_get_waits_for_the_publisher() -> None:
    async def scenario() -> list[object]:
        hub = MediaHub()
        consumer = hub.attach("c")
        waiter = asyncio.ensure_future(consumer.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        hub.start()
        return [await waiter]

    assert asyncio.run(scenario()) == [StreamStart()]


def test_taps_see_every_item_in_push_beside_the_queues() -> None:
    hub = MediaHub()
    queued = hub.attach("queued")
    seen: list[object] = []
    tap = hub.tap("tap", seen.append)
    assert hub.taps == (tap,)
    hub.start()
    hub.set_config(VIDEO)
    hub.push(video(0, True))
    assert seen == [StreamStart(), VIDEO, video(0, True)]  # at once: no queue, no task
    hub.push(video(1, False))
    hub.end("done")
    assert seen == drain(queued) == [StreamStart(), VIDEO, video(0, True), video(1, False), StreamEnd("done")]
    hub.untap(tap)
    hub.start()
    assert hub.taps == () and seen[-1] == StreamEnd("done")


def test_late_tap_gets_start_and_configs_then_waits_for_a_keyframe() -> None:
    hub = MediaHub()
    hub.start()
    hub.set_config(VIDEO)
    hub.set_config(AUDIO)
    hub.push(video(0, True))
    seen: list[object] = []
    hub.tap("late", seen.append)
    hub.push(audio(1))  # before the video keyframe: not decodable in step with the video
    hub.push(video(1, False))
    hub.push(video(2, True))
    hub.push(audio(2))
    assert seen == [StreamStart(), VIDEO, AUDIO, video(2, True), audio(2)]


def test_late_tap_on_an_audio_only_stream_starts_at_the_next_unit() -> None:
    hub = MediaHub()
    hub.start()
    hub.set_config(AUDIO)
    hub.push(audio(0))
    seen: list[object] = []
    hub.tap("late", seen.append)
    hub.push(audio(1))
    assert seen == [StreamStart(), AUDIO, audio(1)]
