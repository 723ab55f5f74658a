//! The network path of one scenario as the report describes it: the veth
//! link, how it is impaired, and the round trip and loss that ping
//! measured through it.
//!
//! It describes and measures the path; making it is
//! [`super::namespaces`]' and [`super::impairer`]'s.

use std::fs;

use super::commands::{COMMAND_LIMIT, iptables};
use super::impairer::QUEUE;
use super::impairment::Impairment;
use super::namespaces::{CLIENT_IP, CLIENT_NS, MTU, SERVER_IP, SERVER_NS};
use super::settings::Settings;
use super::shaper::tbf_arguments;
use crate::process;
use crate::report::PathReport;
use crate::server::{command_in, log_files};

/// Echo requests of the RTT measurement.
const PING_COUNT: u32 = 20;

/// The description of the path of one scenario, before the ping.
pub fn path_report(impairment: Impairment) -> PathReport {
    let link = format!(
        "veth pair between the network namespaces {CLIENT_NS} ({CLIENT_IP}, client) and \
         {SERVER_NS} ({SERVER_IP}, server), MTU {MTU} on both ends"
    );
    let impairment = match impairment {
        Impairment::Plain => "no impairment".to_owned(),
        _ => {
            let what = if impairment.loss() > 0.0 {
                format!(
                    "{} ms delay and {} % loss",
                    impairment.delay_ms(),
                    impairment.loss() * 100.0
                )
            } else {
                format!("{} ms delay", impairment.delay_ms())
            };
            let delay = format!(
                "{what} on each direction: in each namespace `{} -t raw -A PREROUTING -i IF -j \
                 NFQUEUE --queue-num {QUEUE}` hands every IPv4 packet arriving on the veth to \
                 `cargo xtask nfdelay --delay-ms {} --loss {}` there (userspace, since this \
                 kernel has no netem)",
                iptables(),
                impairment.delay_ms(),
                impairment.loss()
            );
            match impairment.bottleneck() {
                Some(bottleneck) => format!(
                    "`tc qdisc replace dev IF root {}` on the egress of both veth ends, then {delay}",
                    tbf_arguments(bottleneck).join(" ")
                ),
                None => delay,
            }
        }
    };
    PathReport {
        link,
        impairment,
        ping_command: format!(
            "ip netns exec {CLIENT_NS} ping -q -U -c {PING_COUNT} -i 0.2 {SERVER_IP}"
        ),
        rtt_ms: None,
        ping_loss_percent: None,
        ping_summary: "not measured".into(),
        impairer_counters: Vec::new(),
        link_rate: None,
    }
}

/// Measures the round trip through the (impaired) link with ping.
pub fn ping(settings: &Settings<'_>, scenario: &str, path: &mut PathReport) -> anyhow::Result<()> {
    let log = settings.logs.join(format!("{scenario}-ping.log"));
    let (stdout, stderr) = log_files(&log)?;
    let count = PING_COUNT.to_string();
    let mut command = command_in(Some(CLIENT_NS), "ping");
    command
        .args(["-q", "-U", "-c", &count, "-i", "0.2", "-W", "2", SERVER_IP])
        .stdout(stdout)
        .stderr(stderr);
    let outcome = process::run(&mut command, None, COMMAND_LIMIT, "ping");
    process::check_interrupted()?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let (rtt, loss) = parse_ping(&text);
    path.rtt_ms = rtt;
    path.ping_loss_percent = loss;
    path.ping_summary = match (&outcome, rtt) {
        (_, Some(_)) => text
            .lines()
            .filter(|line| line.contains("packet loss") || line.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; "),
        (Err(error), None) => format!("ping failed: {error:#}"),
        (Ok(_), None) => format!("no RTT in the output of ping; see {}", log.display()),
    };
    Ok(())
}

/// The RTT (min, avg, max, mdev in ms) and loss (%) in ping's summary.
fn parse_ping(text: &str) -> (Option<[f64; 4]>, Option<f64>) {
    let loss = text.lines().find_map(|line| {
        let before = line
            .split("% packet loss")
            .next()
            .filter(|_| line.contains("% packet loss"))?;
        before.rsplit([' ', ',']).next()?.parse().ok()
    });
    let rtt = text.lines().find_map(|line| {
        let values = line.strip_prefix("rtt min/avg/max/mdev = ")?;
        let values = values.split_whitespace().next()?;
        let numbers: Vec<f64> = values.split('/').filter_map(|v| v.parse().ok()).collect();
        <[f64; 4]>::try_from(numbers).ok()
    });
    (rtt, loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let text = "PING 10.231.7.2 (10.231.7.2) 56(84) bytes of data.\n\n\
                    --- 10.231.7.2 ping statistics ---\n\
                    20 packets transmitted, 19 received, 5% packet loss, time 3805ms\n\
                    rtt min/avg/max/mdev = 50.412/50.873/52.004/0.377 ms\n";
        let (rtt, loss) = parse_ping(text);
        assert_eq!(rtt, Some([50.412, 50.873, 52.004, 0.377]));
        assert_eq!(loss, Some(5.0));
        assert_eq!(
            parse_ping("ping: connect: Network is unreachable\n"),
            (None, None)
        );
    }
}
