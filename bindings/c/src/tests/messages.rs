//! Issue #77 "faces marshal, the core speaks": every user message and next step the C results
//! give is the core's (`polar_license::Message`), passed on as it is; a sentence composed in
//! this crate instead fails here.

use super::*;
use crate::result::polar_license_result;
use crate::seats::polar_license_seat_result;
use crate::usage::polar_license_usage_result;
use polar_license::seat::{SeatAnswer, SeatsFull};
use polar_license::usage::UsageAnswer;
use polar_license::{Error, Reason};

#[test]
fn a_results_message_and_next_step_are_the_cores() {
    for e in [
        Error::Offline {
            timeout: false,
            detail: "refused".into(),
        },
        Error::RateLimited {
            retry_after: Some(42),
        },
        Error::NotYetVerified,
    ] {
        let r = Box::into_raw(Box::new(polar_license_result::error(&e)));
        let said = e.message();
        assert_eq!(text(polar_license_result_user_message(r)), said.text());
        assert_eq!(text(polar_license_result_next_step(r)), said.next_step());
        polar_license_result_free(r);
    }
}

#[test]
fn seats_full_and_credits_exhausted_say_the_cores_words() {
    let full = SeatAnswer::Full(SeatsFull {
        in_use: 2,
        size: 2,
        frees_at: None,
        retry_after: Some(30),
    });
    let r = Box::into_raw(Box::new(polar_license_seat_result::of_answer(&full)));
    let said = full.message().expect("seats_full has words");
    assert_eq!(text(polar_license_seat_result_user_message(r)), said.text());
    assert_eq!(text(polar_license_seat_result_message(r)), said.text());
    assert_eq!(
        text(polar_license_seat_result_next_step(r)),
        "Try again in 30 seconds."
    );
    let sentence = Reason::SeatsFull.user_message().trim_end_matches('.');
    assert!(said.text().starts_with(&format!("{sentence} (2 of 2)")));
    polar_license_seat_result_free(r);

    let spent = UsageAnswer::CreditsExhausted { balance: 0.0 };
    let r = Box::into_raw(Box::new(polar_license_usage_result::of_answer(&spent)));
    assert_eq!(
        text(polar_license_usage_result_user_message(r)),
        Reason::CreditsExhausted.message().text()
    );
    assert_eq!(
        text(polar_license_usage_result_next_step(r)),
        Reason::CreditsExhausted.next_step()
    );
    polar_license_usage_result_free(r);
}
