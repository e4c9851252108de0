//! The faults issue 17 adds, each returning the [`Undo`] that
//! [`super::heal`] carries out: two replicas killed at once, a minority
//! partition the load balancer keeps routing to, a partition from some
//! kubelets only, a kill during another replica's handover, and a clock
//! stepped while the replica runs. Signals go to the pids the harness started.

use std::collections::BTreeSet;
use std::time::Duration;

use sim::kubelet::BlockMode;

use super::{FaultError, Target, Undo, kill, note, target};
use crate::harness::Harness;
use crate::record::{Event, now_ms};
use crate::rng::Rng;

/// kill -9 of the leader and one follower, back to back.
pub(super) async fn kill_two(h: &mut Harness, rng: &mut Rng, ev: &mut Vec<Event>) -> Result<Undo, FaultError> {
    let leader = target(h, Target::Leader, rng).await?;
    let follower = target(h, Target::Follower, rng).await?;
    kill(h, leader);
    kill(h, follower);
    note(ev, format!("kill -9 of the leader replica-{leader} and the follower replica-{follower}"), None);
    Ok(Undo::Restart(vec![leader, follower]))
}

/// Replica `i` cut from its peers; the proxy keeps routing to it for `route_secs`.
pub(super) fn partition_minority(h: &mut Harness, i: usize, route_secs: u64, ev: &mut Vec<Event>) -> Undo {
    h.pin_route(i, Some(Duration::from_secs(route_secs)));
    h.partitions.isolate(h.ip(i));
    note(ev, format!("replica-{i} cut from its peers; still routed to for {route_secs} s"), None);
    Undo::HealMinority(i)
}

/// Replica `i` cut from a third of the kubelets: those it scraped in the
/// last three resolutions first (so the cut hits nodes it owns), then others.
pub(super) fn partition_some_kubelets(h: &mut Harness, i: usize, rng: &mut Rng, ev: &mut Vec<Event>) -> Undo {
    let all: Vec<String> = h.env.spec.nodes.iter().map(|n| n.name.clone()).collect();
    let since = std::time::SystemTime::now() - h.opts.resolution * 3;
    let mine: BTreeSet<String> = h
        .env
        .fleet
        .scrapes_since(since)
        .into_iter()
        .filter(|s| s.client.and_then(|ip| h.replica_of(ip)) == Some(i))
        .map(|s| s.node.to_string())
        .collect();
    let owned: Vec<String> = all.iter().filter(|n| mine.contains(*n)).cloned().collect();
    let others: Vec<String> = all.iter().filter(|n| !mine.contains(*n)).cloned().collect();
    let want = all.len().div_ceil(3);
    let mut picked = rng.pick(&owned, want);
    picked.extend(rng.pick(&others, want.saturating_sub(picked.len())));
    picked.sort();
    h.env.fleet.block_source_from(h.ip(i), &picked, BlockMode::Refuse);
    note(ev, format!("replica-{i} cut from the kubelets of {picked:?}"), None);
    Undo::HealKubelets(i)
}

/// SIGTERM of one follower; once its log says it is draining, kill -9 of
/// the other follower (often the receiver of its nodes); the first is
/// restarted with its data dir once it has exited.
pub(super) async fn restart_during_kill(
    h: &mut Harness,
    rng: &mut Rng,
    ev: &mut Vec<Event>,
) -> Result<Undo, FaultError> {
    let leader = target(h, Target::Leader, rng).await?;
    let followers: Vec<usize> = h.live().into_iter().filter(|i| *i != leader).collect();
    if followers.len() < 2 {
        return Err(FaultError::Failed(format!("two followers wanted, found {followers:?}")));
    }
    let order = rng.pick(&followers, 2);
    let (leaving, victim) = (order[0], order[1]);
    if let Some(r) = h.replicas[leaving].as_mut() {
        r.signal(libc::SIGTERM);
    }
    note(ev, format!("SIGTERM of replica-{leaving}"), None);
    let draining = sim::wait::until(Duration::from_secs(10), async || {
        h.replicas[leaving].as_ref().is_some_and(|r| r.own_log().contains("termination signal received"))
    })
    .await;
    if draining.is_none() {
        return Err(FaultError::Failed(format!("replica-{leaving} did not start draining within 10 s of SIGTERM")));
    }
    kill(h, victim);
    note(ev, format!("kill -9 of replica-{victim} while replica-{leaving} hands its nodes over"), None);
    let exited = sim::wait::until(Duration::from_secs(60), async || {
        h.replicas[leaving].as_mut().is_some_and(|r| r.exited().is_some())
    })
    .await;
    h.replicas[leaving] = None;
    h.reroute();
    if exited.is_none() {
        return Err(FaultError::Failed(format!("replica-{leaving} did not exit within 60 s of SIGTERM")));
    }
    h.spawn(leaving)?;
    note(ev, format!("replica-{leaving} restarted with its data dir"), None);
    Ok(Undo::Restart(vec![victim]))
}

/// Steps follower `i`'s wall clock by `secs` while it runs, and checks
/// that the step took: the `Date` its HTTP server sends moves by `secs`, or,
/// for a step back, stops (hyper renders `Date` again only once the clock
/// has passed the next second it expected, 30 s later), so it falls more
/// than two seconds behind ours either way.
pub(super) async fn step_clock(h: &mut Harness, i: usize, secs: i64, ev: &mut Vec<Event>) -> Result<Undo, FaultError> {
    if !h.clock_steppable() {
        return Err(FaultError::Unsupported("the replicas were not started under libfaketime".into()));
    }
    h.set_clock(i, secs)?;
    note(ev, format!("replica-{i}'s wall clock stepped {secs:+} s while running"), None);
    let addr = h.env.replica_addr(i);
    let took = sim::wait::until(Duration::from_secs(10), async || {
        offset_ms(addr)
            .await
            .is_some_and(|off| if secs < 0 { off <= -2_000 } else { (off - secs * 1000).abs() <= secs.abs() * 500 })
    })
    .await;
    if took.is_none() {
        let seen = offset_ms(addr).await;
        return Err(FaultError::Unsupported(format!(
            "libfaketime did not step replica-{i}'s clock (its Date header is {seen:?} ms off ours, wanted {secs} s)"
        )));
    }
    Ok(Undo::Unstep(i))
}

/// How far the `Date` header of replica `addr`'s `/healthz` is from our clock, in ms.
async fn offset_ms(addr: std::net::SocketAddr) -> Option<i64> {
    let reply = tokio::time::timeout(Duration::from_secs(2), sim::client::fetch(addr, "/healthz", None, &[]))
        .await
        .ok()?
        .ok()?;
    let date = reply.headers.get(http::header::DATE)?.to_str().ok()?;
    Some(http_date_ms(date)? - now_ms() as i64)
}

/// An IMF-fixdate (`Sun, 06 Dec 2026 08:45:12 GMT`) as Unix ms.
fn http_date_ms(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let m = MONTHS.iter().position(|x| x == month)? + 1;
    let rfc3339 = format!("{year}-{m:02}-{day:0>2}T{time}Z");
    apimachinery::format::parse_time(&rfc3339).map(|ns| ns / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_date_reads_as_unix_ms() {
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:10 GMT"), Some(10_000));
        assert_eq!(http_date_ms("Sun, 06 Dec 2026 08:45:12 GMT"), Some(1_796_546_712_000));
        assert_eq!(http_date_ms("yesterday"), None);
        assert_eq!(http_date_ms("Sun, 06 Foo 2026 08:45:12 GMT"), None);
    }
}
