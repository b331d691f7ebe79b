"""The drops probe's figures (loadtests/drops_accounting.py), on hand-made probe records."""

from loadtests.drops_accounting import MARGIN_MS, Outage, account, outages

SEED = {"client_id": "seed-a", "id": "900-0"}


def sent(*messages: tuple) -> dict:
    """A sender in room a: (client_id, id or None, attempts[, errors]); ts is the id's ms."""
    rows = []
    for client_id, message_id, attempts, *errors in messages:
        row = [client_id, message_id, attempts, errors[0] if errors else {}]
        if message_id:
            row.append(int(message_id.split("-")[0]))
        rows.append(row)
    return {"name": "s", "room": "a", "messages": rows, "events": []}


def receiver(messages: list[tuple], events: list[list] | None = None, room: str = "a") -> dict:
    return {"name": "r", "room": room, "messages": [[*m, 0] for m in messages],
            "events": events or [["c", 0, 0], ["j", 1, 0, 0]]}


def record(senders: list[dict], receivers: list[dict], mode: str = "resume") -> dict:
    return {"mode": mode, "seeds": {"a": SEED}, "senders": senders, "receivers": receivers,
            "settled": True, "sent_for_s": 10.0, "settle_for_s": 2.0}


def test_every_acknowledged_message_received_once_in_order_is_100_percent():
    row = account(record([sent(("m1", "1000-0", 1), ("m2", "1001-0", 2))],
                         [receiver([("1000-0", "m1", "event"), ("1001-0", "m2", "missed")])]))
    assert row["delivered_percent"] == 100.0
    assert (row["expected"], row["delivered"], row["missing"]) == (2, 2, 0)
    assert (row["duplicates"], row["out_of_order"], row["resends"]) == (0, 0, 1)


def test_the_percentage_is_rounded_down_so_100_means_nothing_missing():
    messages = [(f"m{n}", f"{1000 + n}-0", 1) for n in range(10001)]
    got = [(message_id, client_id, "event") for client_id, message_id, _ in messages[:-1]]
    row = account(record([sent(*messages)], [receiver(got)]))
    assert row["missing"] == 1 and row["delivered_percent"] == 99.99


def test_each_receiver_is_owed_only_its_rooms_messages_and_the_seed_is_not_counted():
    row = account(record([sent(("m1", "1000-0", 1))],
                         [receiver([("900-0", "seed-a", "missed"), ("1000-0", "m1", "event")]),
                          receiver([], room="b")]))
    assert (row["expected"], row["delivered"], row["duplicates"]) == (1, 1, 0)


def test_a_resend_stored_under_a_second_id_is_a_duplicate_stored_twice():
    row = account(record([sent(("m1", "1001-0", 2))],
                         [receiver([("1000-0", "m1", "event"), ("1001-0", "m1", "event")])]))
    assert row["delivered_percent"] == 100.0
    assert row["duplicates_by_cause"] == {"stored_twice": 1, "in_missed": 0, "as_event": 0}


def test_the_same_id_twice_is_counted_by_how_it_came_again():
    got = [("1000-0", "m1", "event"), ("1000-0", "m1", "missed"), ("1000-0", "m1", "event")]
    row = account(record([sent(("m1", "1000-0", 1))], [receiver(got)]))
    assert row["duplicates"] == 2
    assert row["duplicates_by_cause"] == {"stored_twice": 0, "in_missed": 1, "as_event": 1}
    assert row["out_of_order"] == 0  # a repeat is a duplicate, not also out of order


def test_an_older_id_after_a_newer_one_is_out_of_order_by_way_of_arrival():
    got = [("1001-0", "m2", "event"), ("1000-0", "m1", "missed"), ("1002-0", "m3", "event")]
    row = account(record([sent(("m1", "1000-0", 1), ("m2", "1001-0", 1), ("m3", "1002-0", 1))],
                         [receiver(got)]))
    assert row["out_of_order"] == 1
    assert row["out_of_order_by_way"] == {"in_missed": 1, "as_event": 0}


def test_ids_compare_as_numbers_not_text():
    got = [("999-0", "m1", "event"), ("1000-0", "m2", "event"), ("1000-10", "m3", "event"),
           ("1000-9", "m4", "event")]
    row = account(record([sent(("m1", "999-0", 1), ("m2", "1000-0", 1), ("m3", "1000-10", 1),
                               ("m4", "1000-9", 1))], [receiver(got)]))
    assert row["out_of_order"] == 1


def test_sends_never_acknowledged_are_counted_and_not_owed():
    row = account(record([sent(("m1", "1000-0", 1), ("m2", None, 4, {"unavailable": 3}))],
                         [receiver([("1000-0", "m1", "event"), ("1001-0", "m2", "event")])]))
    assert (row["acknowledged"], row["unacknowledged_sends"], row["expected"]) == (1, 1, 1)
    assert row["send_errors"] == {"unavailable": 3}
    assert row["delivered_unacknowledged"] == 1  # stored, but its ack never came
    assert row["resends"] == 0  # resends count only for acknowledged messages


def test_outages_run_from_a_disconnect_to_being_back_in_the_room():
    events = [["c", 0, 0], ["j", 5, 0, 0],
              ["d", 100, "transport close"], ["c", 300, 0], ["d", 310, "transport close"],
              ["c", 500, 0], ["j", 520, 3, 0],  # rejoined after a connect that dropped at once
              ["d", 1000, "transport close"], ["c", 1200, 1],  # recovered
              ["d", 2000, "transport error"], ["c", 2100, 0], ["e", 2200, "lost"],
              ["d", 2300, "io client disconnect"]]
    assert outages(events) == [Outage(100, 520, "rejoined"), Outage(1000, 1200, "recovered"),
                               Outage(2000, None, "never_back")]


def test_the_probes_own_closing_disconnect_is_no_outage():
    assert outages([["c", 0, 0], ["j", 1, 0, 0], ["d", 9, "io client disconnect"]]) == []


def test_missing_messages_are_blamed_on_the_outage_around_their_time_or_on_the_connection():
    events = [["c", 0, 0], ["j", 1, 0, 0],
              ["d", 10_000, "transport close"], ["c", 12_000, 1],
              ["d", 20_000, "transport close"], ["c", 22_000, 0], ["j", 22_010, 0, 0],
              ["d", 30_000, "transport close"]]
    stored = {"recovered": 12_000 + MARGIN_MS, "rejoined": 20_000 - MARGIN_MS,
              "connected": 16_000, "never_back": 40_000}
    messages = [(cause, f"{ts}-0", 1) for cause, ts in stored.items()]
    row = account(record([sent(*messages)], [receiver([], events)], mode="recovery"))
    assert row["delivered_percent"] == 0.0
    assert row["missing_by_cause"] == {cause: 1 for cause in
                                       ("recovered", "rejoined", "never_back", "connected")}
    assert row["receiver_reconnects"] == {"recovered": 1, "rejoined": 1, "never_back": 1}


def test_a_run_with_nothing_acknowledged_has_no_percentage():
    row = account(record([sent(("m1", None, 3))], [receiver([])]))
    assert row["expected"] == 0 and row["delivered_percent"] is None


def test_truncated_joins_are_counted():
    events = [["c", 0, 0], ["j", 1, 0, 0], ["d", 5, "transport close"], ["c", 8, 0],
              ["j", 9, 500, 1]]
    row = account(record([sent(("m1", "1000-0", 1))],
                         [receiver([("1000-0", "m1", "missed")], events)]))
    assert row["truncated_joins"] == 1
