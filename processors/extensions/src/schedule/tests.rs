use super::*;
use crate::model::Profile;

fn agent(n: usize) -> AgentId {
    AgentId::new(format!("a{n:03}")).unwrap_or_else(|e| panic!("{e}"))
}

fn ext(n: usize) -> Extension {
    Extension::new(&format!("{n:04}")).unwrap_or_else(|e| panic!("{e}"))
}

fn since(n: usize) -> String {
    format!("2026-11-20T08:00:{:02}.000000Z#a{n:03}", n % 60)
}

fn waiter(n: usize) -> Waiter {
    Waiter {
        agent: agent(n),
        agent_arn: None,
        username: None,
    }
}

fn arrive(n: usize) -> Action {
    Action::Assign {
        profile: Profile {
            agent: agent(n),
            agent_arn: None,
            username: None,
            extension: None,
            waiting: true,
            queue_key: Some(since(n)),
        },
        prior: None,
    }
}

fn depart(n: usize, x: usize) -> Action {
    Action::Release {
        agent: agent(n),
        extension: ext(x),
    }
}

/// A small model of the table: who holds what, who waits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    /// extension → holder (absent: free)
    held: BTreeMap<usize, usize>,
    pool: usize,
    /// agents waiting (profile without extension), by id
    waiting: BTreeSet<usize>,
    /// agent → the extension reserved for its username (`u{n}`)
    reserved: BTreeMap<usize, usize>,
}

impl Table {
    fn holder_of(&self, x: usize) -> Option<usize> {
        self.held.get(&x).copied()
    }

    fn holds(&self, a: usize) -> bool {
        self.held.values().any(|h| *h == a)
    }

    /// The view a batch reads: a profile for every agent of the batch,
    /// the queues, the owners of the released extensions.
    fn view(&self, actions: &[Action]) -> (Vec<Action>, View) {
        let mut kept = Vec::new();
        let mut view = View::default();
        for a in actions {
            match a {
                Action::Release { extension, .. } => {
                    let x: usize = extension.as_str().parse().unwrap_or_default();
                    view.owners
                        .insert(extension.clone(), self.holder_of(x).map(agent));
                    kept.push(a.clone());
                }
                Action::Assign { profile, .. } => {
                    let n: usize = profile.agent.as_str()[1..].parse().unwrap_or_default();
                    // plan() drops the arrival of an agent that holds one
                    if self.waiting.contains(&n) {
                        kept.push(a.clone());
                    } else {
                        view.holding.insert(agent(n));
                    }
                    if let (Some(u), Some(x)) = (&profile.username, self.reserved.get(&n)) {
                        view.reserved.insert(u.clone(), ext(*x));
                    }
                }
            }
        }
        view.free = (0..self.pool)
            .filter(|x| self.holder_of(*x).is_none() && !self.reserved.values().any(|r| r == x))
            .map(ext)
            .collect();
        view.waiting = self
            .waiting
            .iter()
            .map(|n| {
                let mut w = waiter(*n);
                if let Some(x) = self.reserved.get(n) {
                    w.username = Some(format!("u{n}"));
                    view.reserved.insert(format!("u{n}"), ext(*x));
                }
                (since(*n), w)
            })
            .collect();
        (kept, view)
    }

    /// Commits one op, as its conditional transaction would.
    fn commit(&mut self, op: &Op) {
        let num = |a: &AgentId| a.as_str()[1..].parse::<usize>().unwrap_or_default();
        let x_of = |x: &Extension| x.as_str().parse::<usize>().unwrap_or_default();
        match op {
            Op::Claim { agent, x } | Op::Restore { agent, x } => {
                assert!(!self.holds(num(&agent.agent)));
                assert!(self.holder_of(x_of(x)).is_none() || matches!(op, Op::Restore { .. }));
                assert!(
                    !self.reserved.values().any(|r| *r == x_of(x)),
                    "{x} is reserved"
                );
                self.held.insert(x_of(x), num(&agent.agent));
                self.waiting.remove(&num(&agent.agent));
            }
            Op::Reserved { agent, x, username } => {
                let n = num(&agent.agent);
                assert!(!self.holds(n));
                assert_eq!(self.reserved.get(&n), Some(&x_of(x)));
                assert_eq!(username, &format!("u{n}"));
                self.reserved.remove(&n);
                self.held.insert(x_of(x), n);
                self.waiting.remove(&n);
            }
            Op::Handover { from, x, to } => {
                assert_eq!(self.holder_of(x_of(x)), Some(num(from)));
                self.held.insert(x_of(x), num(&to.agent));
                self.waiting.remove(&num(&to.agent));
            }
            Op::Free { from, x } => {
                assert_eq!(self.holder_of(x_of(x)), Some(num(from)));
                self.held.remove(&x_of(x));
            }
            Op::Wait { .. } | Op::Nothing => {}
        }
    }

    /// Applies a batch: schedule, then commit the ops `keep` picks.
    fn apply(&mut self, actions: &[Action], keep: impl Fn(usize) -> bool) {
        let (kept, view) = self.view(actions);
        let refs: Vec<&Action> = kept.iter().collect();
        let s = schedule(&refs, view);
        for (i, op) in s.ops.iter().enumerate() {
            if keep(i) {
                self.commit(op);
            }
        }
    }
}

/// Departures free what they held in the stream; arrivals become
/// waiting profiles before the batch runs (sources come first).
fn stream(table: &mut Table, records: &[(bool, usize)]) -> Vec<Action> {
    records
        .iter()
        .map(|&(arrives, n)| {
            if arrives {
                table.waiting.insert(n);
                if table.reserved.contains_key(&n) {
                    arrive_as(n, &format!("u{n}"))
                } else {
                    arrive(n)
                }
            } else {
                let x = table
                    .held
                    .iter()
                    .find(|(_, h)| **h == n)
                    .map(|(x, _)| *x)
                    .unwrap_or(usize::MAX);
                table.waiting.remove(&n);
                depart(n, x)
            }
        })
        .collect()
}

#[test]
fn arrivals_take_the_lowest_free_in_stream_order_and_the_rest_wait() {
    let mut t = Table {
        pool: 3,
        ..Table::default()
    };
    let actions = stream(&mut t, &[(true, 5), (true, 2), (true, 9), (true, 1)]);
    let (kept, view) = t.view(&actions);
    let s = schedule(&kept.iter().collect::<Vec<_>>(), view);
    assert_eq!(
        s.ops,
        vec![
            Op::Claim {
                agent: waiter(5),
                x: ext(0)
            },
            Op::Claim {
                agent: waiter(2),
                x: ext(1)
            },
            Op::Claim {
                agent: waiter(9),
                x: ext(2)
            },
            Op::Wait { agent: agent(1) },
        ]
    );
    assert!(s.spare_free.is_empty());
    assert_eq!(s.spare_waiting, vec![waiter(1)]);
}

#[test]
fn releases_go_to_the_longest_waiting_then_back_to_the_pool() {
    let mut t = Table {
        pool: 2,
        held: BTreeMap::from([(0, 10), (1, 11)]),
        waiting: BTreeSet::from([30]),
        ..Table::default()
    };
    let actions = stream(&mut t, &[(false, 11), (false, 10), (true, 40)]);
    t.apply(&actions, |_| true);
    // 30 waited longest: it gets 11's extension; 10's goes to the pool
    // and the arrival after it takes it.
    assert_eq!(t.held, BTreeMap::from([(0, 40), (1, 30)]));
    assert!(t.waiting.is_empty());
}

#[test]
fn a_redelivered_release_or_arrival_does_nothing() {
    let mut t = Table {
        pool: 2,
        held: BTreeMap::from([(0, 10)]),
        waiting: BTreeSet::from([30]),
        ..Table::default()
    };
    let actions = stream(&mut t, &[(false, 10), (true, 31)]);
    t.apply(&actions, |_| true);
    let after = t.clone();
    let (kept, view) = t.view(&actions);
    let s = schedule(&kept.iter().collect::<Vec<_>>(), view);
    assert!(s.ops.iter().all(|op| *op == Op::Nothing), "{:?}", s.ops);
    assert_eq!(t, after);
}

fn arrive_as(n: usize, username: &str) -> Action {
    match arrive(n) {
        Action::Assign { mut profile, prior } => {
            profile.username = Some(username.to_owned());
            Action::Assign { profile, prior }
        }
        other => other,
    }
}

/// A reserved extension goes to its username's profile, never to
/// another arrival, and does not move the others' lowest-free order.
#[test]
fn a_reservation_is_honoured_on_arrival() {
    let actions = [
        arrive(1),
        arrive_as(2, "ada"),
        arrive(3),
        arrive_as(4, "bob"),
    ];
    let view = View {
        free: vec![ext(0), ext(1)],
        reserved: HashMap::from([("ada".to_owned(), ext(9))]),
        ..View::default()
    };
    let s = schedule(&actions.iter().collect::<Vec<_>>(), view);
    let mut ada = waiter(2);
    ada.username = Some("ada".to_owned());
    let mut bob = waiter(4);
    bob.username = Some("bob".to_owned());
    assert_eq!(
        s.ops,
        vec![
            Op::Claim {
                agent: waiter(1),
                x: ext(0)
            },
            Op::Reserved {
                agent: ada,
                x: ext(9),
                username: "ada".to_owned()
            },
            Op::Claim {
                agent: waiter(3),
                x: ext(1)
            },
            Op::Wait { agent: agent(4) },
        ]
    );
    // Redelivered after the reservation was used: the agent holds it,
    // plan() drops its arrival, and nobody else is offered 0009.
    let view = View {
        free: vec![ext(1)],
        ..View::default()
    };
    let s = schedule(&[&arrive(3)], view);
    assert_eq!(
        s.ops,
        vec![Op::Claim {
            agent: waiter(3),
            x: ext(1)
        }]
    );
}

/// With reservations: the reserved agents get their own extensions
/// whatever crashed or where the stream was cut, nobody else ever gets a
/// reserved one, and a reservation whose agent never comes stays.
#[test]
fn reservations_hold_through_crashes_and_cuts() {
    let phases: Vec<Vec<(bool, usize)>> = vec![
        (0..8).map(|n| (true, n)).collect(),
        vec![(false, 0), (false, 4), (true, 13)],
        (8..12).map(|n| (true, n)).collect(),
    ];
    let start = Table {
        pool: 12,
        reserved: BTreeMap::from([(3, 11), (13, 5), (20, 0)]),
        ..Table::default()
    };
    let run = |crash: &dyn Fn(usize, usize) -> bool, cut: usize| {
        let mut t = start.clone();
        for (p, phase) in phases.iter().enumerate() {
            let actions = stream(&mut t, phase);
            t.apply(&actions, |i| crash(p, i));
            let cut = cut.min(actions.len());
            t.apply(&actions[..cut], |_| true);
            t.apply(&actions[cut..], |_| true);
        }
        t
    };
    let reference = run(&|_, _| true, usize::MAX);
    assert_eq!(reference.holder_of(11), Some(3), "{reference:?}");
    assert_eq!(reference.holder_of(5), Some(13), "{reference:?}");
    assert_eq!(reference.holder_of(0), None);
    assert_eq!(reference.reserved, BTreeMap::from([(20, 0)]));
    for seed in 0..200u64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut bits = Vec::new();
        for _ in 0..48 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bits.push(state % 3 != 0);
        }
        let crash = |p: usize, i: usize| bits[(p * 16 + i) % bits.len()];
        for cut in [0, 1, 2, 5, usize::MAX] {
            assert_eq!(run(&crash, cut), reference, "seed {seed}, cut {cut}");
        }
    }
}

/// The outcome of a churn is the same whether the stream comes as one
/// batch, or a batch crashes after committing any subset of its ops and
/// is delivered again, or is cut anywhere: the schedule depends on the
/// stream, not on what happened to run first.
#[test]
fn crashes_and_cuts_anywhere_give_the_one_batch_outcome() {
    let phases: Vec<Vec<(bool, usize)>> = vec![
        (0..12).map(|n| (true, n)).collect(),
        (0..12).step_by(4).map(|n| (false, n)).collect(),
        (12..16).map(|n| (true, n)).collect(),
    ];
    let run = |crash: &dyn Fn(usize, usize) -> bool, cut: usize| {
        let mut t = Table {
            pool: 10,
            ..Table::default()
        };
        for (p, phase) in phases.iter().enumerate() {
            let actions = stream(&mut t, phase);
            // a first delivery that commits only what `crash` keeps
            t.apply(&actions, |i| crash(p, i));
            // then the stream again, cut at `cut`
            let cut = cut.min(actions.len());
            t.apply(&actions[..cut], |_| true);
            t.apply(&actions[cut..], |_| true);
        }
        t
    };
    let reference = run(&|_, _| true, usize::MAX);
    assert_eq!(reference.waiting, BTreeSet::from([13, 14, 15]));
    for seed in 0..200u64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut bits = Vec::new();
        for _ in 0..48 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bits.push(state % 3 != 0);
        }
        let crash = |p: usize, i: usize| bits[(p * 16 + i) % bits.len()];
        for cut in [0, 1, 3, 7, usize::MAX] {
            assert_eq!(run(&crash, cut), reference, "seed {seed}, cut {cut}");
        }
    }
}
