import chainer
import numpy
import pytest

from minibatch_hybrid import schedules as S

SIZE = 23
SEEDED = [S.Random, S.ShuffleOnce, S.WithReplacement]

# Orders are integers, a pure function of (seed, epoch): exact.
pytestmark = pytest.mark.exact


def is_permutation(order, size):
    return sorted(order.tolist()) == list(range(size))


def test_fixed_is_dataset_order_every_epoch():
    for epoch in (0, 1, 499):
        numpy.testing.assert_array_equal(S.Fixed().order(epoch, SIZE),
                                         numpy.arange(SIZE))


def test_random_is_a_new_permutation_every_epoch():
    schedule = S.Random(seed=3)
    orders = [schedule.order(e, SIZE) for e in range(5)]
    for order in orders:
        assert is_permutation(order, SIZE)
    assert len({tuple(o) for o in orders}) == 5


def test_shuffle_once_reuses_one_permutation():
    schedule = S.ShuffleOnce(seed=3)
    first = schedule.order(0, SIZE)
    assert is_permutation(first, SIZE)
    assert not numpy.array_equal(first, numpy.arange(SIZE))
    for epoch in (1, 7):
        numpy.testing.assert_array_equal(schedule.order(epoch, SIZE), first)


def test_with_replacement_draws_iid_indices():
    schedule = S.WithReplacement(seed=3)
    orders = [schedule.order(e, 1000) for e in range(3)]
    for order in orders:
        assert len(order) == 1000
        assert order.min() >= 0 and order.max() < 1000
        # With replacement, about 1/e of the indices are missing.
        assert 300 < 1000 - len(set(order.tolist())) < 440


@pytest.mark.parametrize('cls', SEEDED)
def test_same_seed_same_orders_other_seed_other_orders(cls):
    a, b, c = cls(seed=5), cls(seed=5), cls(seed=6)
    for epoch in range(3):
        numpy.testing.assert_array_equal(a.order(epoch, SIZE),
                                         b.order(epoch, SIZE))
    assert not numpy.array_equal(a.order(0, SIZE), c.order(0, SIZE))


@pytest.mark.parametrize('cls', SEEDED)
def test_orders_do_not_use_numpy_global_state(cls):
    numpy.random.seed(0)
    first = cls(seed=1).order(2, SIZE)
    state = numpy.random.get_state()[1].copy()
    numpy.random.seed(12345)
    numpy.testing.assert_array_equal(cls(seed=1).order(2, SIZE), first)
    numpy.random.seed(0)
    cls(seed=1).order(2, SIZE)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state)


def test_order_is_pure_in_the_epoch():
    schedule = S.Random(seed=1)
    late = schedule.order(9, SIZE)
    for epoch in range(9):
        schedule.order(epoch, SIZE)
    numpy.testing.assert_array_equal(schedule.order(9, SIZE), late)


def test_hybrid_switches_at_its_epoch():
    schedule = S.hybrid(3, 2, seed=4)
    assert schedule.epochs == 5
    assert str(schedule) == 'fixed:3+random:2'
    random = S.Random(seed=4)
    for epoch in range(3):
        numpy.testing.assert_array_equal(schedule.order(epoch, SIZE),
                                         numpy.arange(SIZE))
    for epoch in (3, 4):
        # The random phase uses the global epoch, as a Random of the same
        # seed does: paired runs share their random epochs.
        numpy.testing.assert_array_equal(schedule.order(epoch, SIZE),
                                         random.order(epoch, SIZE))
        assert is_permutation(schedule.order(epoch, SIZE), SIZE)
    with pytest.raises(ValueError, match='past its end'):
        schedule.order(5, SIZE)


def test_reverse_hybrid_from_text():
    schedule = S.parse_schedule('random:2+fixed:2', seed=0)
    assert not numpy.array_equal(schedule.order(1, SIZE), numpy.arange(SIZE))
    numpy.testing.assert_array_equal(schedule.order(2, SIZE),
                                     numpy.arange(SIZE))


@pytest.mark.parametrize('text,expected,epochs', [
    ('fixed', 'fixed', None),
    ('random', 'random', None),
    ('shuffle_once', 'shuffle_once', None),
    ('with_replacement', 'with_replacement', None),
    ('fixed:250+random:250', 'fixed:250+random:250', 500),
    ('hybrid:250', 'fixed:250+random', None),
    (' fixed:1 + shuffle_once:2 + with_replacement ',
     'fixed:1+shuffle_once:2+with_replacement', None),
    ('random:7', 'random:7', 7),
])
def test_text_form_round_trips(text, expected, epochs):
    schedule = S.parse_schedule(text, seed=0)
    assert str(schedule) == expected
    assert schedule.epochs == epochs
    assert str(S.parse_schedule(str(schedule), seed=0)) == expected


def test_parse_schedules_splits_on_commas():
    parsed = S.parse_schedules('random,fixed:250+random:250', seed=2)
    assert [str(s) for s in parsed] == ['random', 'fixed:250+random:250']
    assert parsed[0].seed == 2 and parsed[1].phases[1][0].seed == 2


@pytest.mark.parametrize('text,message', [
    ('randm', "unknown schedule 'randm'.*choose from fixed, hybrid, random"),
    ('fixed:0+random:10', 'must be a positive integer, got 0'),
    ('fixed:-3+random', 'must be a positive integer, got -3'),
    ('fixed:ten', "must be an integer, got 'ten'"),
    ('random+fixed:3', 'only the last phase may leave its epochs open'),
    ('hybrid', 'needs its number of fixed epochs'),
    ('', 'empty list of schedules'),
    ('random,,fixed', 'empty schedule'),
])
def test_bad_text_gets_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        S.parse_schedules(text, seed=0)


@pytest.mark.parametrize('seed', [-1, 1.5, None, True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match='seed must be a non-negative'):
        S.Random(seed)


def test_phases_must_add_up_to_the_run():
    schedule = S.parse_schedule('fixed:250+random:250', seed=0)
    schedule.check_epochs(500)
    with pytest.raises(ValueError, match='defines 500 epochs, but the run '
                       'has 400'):
        schedule.check_epochs(400)
    open_ended = S.parse_schedule('hybrid:250', seed=0)
    open_ended.check_epochs(251)
    with pytest.raises(ValueError, match='leaves its last phase no epochs'):
        open_ended.check_epochs(250)
    with pytest.raises(ValueError, match='must be a positive integer'):
        S.Random(seed=0).check_epochs(0)


def test_phased_rejects_bad_phases():
    with pytest.raises(ValueError, match='at least one phase'):
        S.Phased([])
    with pytest.raises(TypeError, match='must be a .schedule, epochs. pair'):
        S.Phased([('fixed', 3)])


def test_schedule_as_chainer_order_sampler_gives_exact_batches():
    # Chainer asks the sampler for epoch 0 when the iterator is built, then
    # at the end of each epoch for the next.
    dataset = numpy.arange(10) * 10
    schedule = S.hybrid(1, 2, seed=7)
    it = chainer.iterators.SerialIterator(dataset, 5, order_sampler=schedule)
    seen = [numpy.concatenate([it.next(), it.next()]) for _ in range(3)]
    assert it.epoch == 3
    numpy.testing.assert_array_equal(seen[0], dataset)
    for epoch in (1, 2):
        numpy.testing.assert_array_equal(
            seen[epoch], dataset[S.Random(seed=7).order(epoch, 10)])


def test_orders_carry_their_epoch_and_the_sampler_holds_no_state():
    schedule = S.Random(seed=1)
    first = schedule(numpy.arange(SIZE), 0)
    assert isinstance(first, S.EpochOrder) and first.epoch == 0
    second = schedule(first, 20)
    assert second.epoch == 1
    numpy.testing.assert_array_equal(second, schedule.order(1, SIZE))
    # A reset (a plain arange) starts at epoch 0 again, without disturbing
    # anyone who holds a later order.
    assert schedule(numpy.arange(SIZE), 0).epoch == 0
    assert schedule(second, 0).epoch == 2
    # Views and copies keep the epoch.
    assert second[3:].epoch == 1 and second.copy().epoch == 1


def test_one_lookahead_past_a_phased_schedule_then_an_error():
    schedule = S.parse_schedule('fixed:1+random:1', seed=0)
    order = schedule(numpy.arange(SIZE), 0)
    order = schedule(order, 0)
    # Asked for epoch 2 while epoch 1, the last, ends: the last phase goes on.
    order = schedule(order, 0)
    numpy.testing.assert_array_equal(order, S.Random(0).order(2, SIZE))
    with pytest.raises(ValueError, match='defines 2 epochs, but the run went '
                       'on past them'):
        schedule(order, 0)


def test_schedule_built_for_another_size_fails_at_the_first_order():
    schedule = S.parse_schedule('fixed:2+random:2', seed=0, size=100)
    assert schedule.size == 100
    with pytest.raises(ValueError, match='built for a data set of 100 '
                       'examples, but the iterator.s data set has 50'):
        chainer.iterators.SerialIterator(numpy.arange(50), 10,
                                         order_sampler=schedule)
    with pytest.raises(ValueError, match='size must be a positive integer'):
        S.Random(0).with_size(0)


def test_replay_gives_the_orders_it_was_given():
    orders = [numpy.array([2, 0, 1]), numpy.array([1, 2, 0])]
    schedule = S.Replay(orders)
    assert schedule.epochs == 2
    numpy.testing.assert_array_equal(schedule.order(1, 3), orders[1])
    with pytest.raises(ValueError, match='has 3 indices, but the data set '
                       'has 4'):
        schedule.order(0, 4)
