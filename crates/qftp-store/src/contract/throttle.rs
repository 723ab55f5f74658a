//! Checks of [`LoginThrottle`]: failures lead to a block of their pair, the
//! block names its bound, and other pairs stay open.

use std::net::{IpAddr, Ipv4Addr};

use crate::throttle::{LoginAttempt, LoginThrottle};

/// A pair that failed `max_failures` times (the store's pair bound) is
/// blocked, while another user from another address is not.
pub async fn blocks_after_failures(throttle: &dyn LoginThrottle, max_failures: u32, prefix: &str) {
    let user = format!("{prefix}victim");
    let attacker = LoginAttempt::Password {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        user: &user,
    };
    let bystander_name = format!("{prefix}bystander");
    let bystander = LoginAttempt::Password {
        address: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
        user: &bystander_name,
    };
    assert_eq!(
        throttle.is_blocked(attacker).await.expect("is_blocked"),
        None,
        "a fresh pair is not blocked"
    );
    let mut last_delay = std::time::Duration::ZERO;
    for _ in 0..max_failures {
        last_delay = throttle
            .record_failure(attacker)
            .await
            .expect("record_failure");
    }
    assert!(!last_delay.is_zero(), "failures delay the reply");
    let blocked = throttle
        .is_blocked(attacker)
        .await
        .expect("is_blocked")
        .expect("a pair at its bound is blocked");
    assert!(
        !blocked.retry_after.is_zero(),
        "a block says how long it lasts"
    );
    assert_eq!(
        throttle.is_blocked(bystander).await.expect("is_blocked"),
        None,
        "another user from another address is not blocked"
    );
    throttle
        .record_success(bystander, &bystander_name)
        .await
        .expect("record_success");
    assert!(
        throttle
            .is_blocked(attacker)
            .await
            .expect("is_blocked")
            .is_some(),
        "another pair's success does not lift a block"
    );

    let token_address = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 3));
    for _ in 0..max_failures {
        throttle
            .record_failure(LoginAttempt::Token {
                address: token_address,
            })
            .await
            .expect("record_failure");
    }
    assert!(
        throttle
            .is_blocked(LoginAttempt::Token {
                address: token_address
            })
            .await
            .expect("is_blocked")
            .is_some(),
        "made-up tokens are throttled like passwords"
    );
}
