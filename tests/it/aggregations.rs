//! Time-window aggregations against real Postgres and Redis (and the embedded stores):
//! events pushed one by one update the online states, and at random moments every
//! aggregate served online equals the training set's, computed from the offline events,
//! bit for bit; events out of order within the allowed lateness change nothing, later ones
//! are refused, counted and reported; a rebuilt online store gives the same answers.

use arrow::array::RecordBatch;
use lockstep::datagen::SplitMix64;
use lockstep::model::format_timestamp;
use lockstep::pipeline::{
    EARLIEST, Lockstep, MaterializeRequest, OnlineRequest, PushTarget, Status, TrainingSetRequest,
};
use lockstep_tests::JsonRows;
use lockstep_tests::TestBackend;
use serde_json::json;

use crate::parity::{assert_parity, user_rows};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const VIEW: &str = "user_payment_aggregates";
/// 2026-03-01T00:00:00Z.
const START: i64 = 1_772_323_200_000_000;

/// Every function over windows from 10 minutes to the lifetime; ttl 2 days.
const DEFINITIONS: &str = r#"
project = "payments"

[entities.user]
join_key = "user_id"
type = "int64"

[sources.payments]
kind = "push"
timestamp_field = "event_timestamp"
schema = { user_id = "int64", amount = "float64?", quantity = "int64", country = "utf8?", event_timestamp = "timestamp" }

[feature_views.user_payment_aggregates]
entities = ["user"]
source = "payments"
ttl = "2d"
granularity = "1m"
allowed_lateness = "10m"
aggregations = [
  { name = "payments_10m", function = "count", window = "10m" },
  { name = "amounts_1h", function = "count", column = "amount", window = "1h" },
  { name = "amount_sum_1h", function = "sum", column = "amount", window = "1h" },
  { name = "amount_mean_24h", function = "mean", column = "amount", window = "24h" },
  { name = "amount_min_1h", function = "min", column = "amount", window = "1h" },
  { name = "amount_max_7d", function = "max", column = "amount", window = "7d" },
  { name = "country_last_1h", function = "last", column = "country", window = "1h" },
  { name = "countries_24h", function = "count_distinct", column = "country", window = "24h" },
  { name = "quantity_sum_ever", function = "sum", column = "quantity", window = "lifetime" },
  { name = "quantity_mean_ever", function = "mean", column = "quantity", window = "lifetime" },
]
"#;

const USERS: i64 = 30;

async fn open(backend: &TestBackend) -> Lockstep {
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    lockstep.apply(DEFINITIONS).await.expect("apply");
    lockstep
}

/// One payment.
#[derive(Debug, Clone)]
struct Payment {
    user: i64,
    at: i64,
    amount: Option<f64>,
    quantity: i64,
    country: Option<&'static str>,
}

impl Payment {
    fn columns(&self) -> lockstep::api::json::JsonColumns {
        serde_json::from_value(json!({
            "user_id": [self.user],
            "amount": [self.amount],
            "quantity": [self.quantity],
            "country": [self.country],
            "event_timestamp": [format_timestamp(self.at)],
        }))
        .unwrap()
    }
}

/// Payments of users 0..USERS in time order: gaps up to 6 minutes, with bursts of a few
/// seconds; some amounts and countries missing.
fn payments(random: &mut SplitMix64, count: usize) -> Vec<Payment> {
    let mut at = START;
    (0..count)
        .map(|_| {
            let burst = random.next_u64().is_multiple_of(3);
            at +=
                1 + (random.next_u64() % if burst { 5_000_000 } else { 6 * MINUTE as u64 }) as i64;
            Payment {
                user: (random.next_u64() % USERS as u64) as i64,
                at,
                amount: (!random.next_u64().is_multiple_of(8))
                    .then(|| (random.next_u64() % 1_000_000) as f64 / 37.0),
                quantity: (random.next_u64() % 20) as i64,
                country: match random.next_u64() % 5 {
                    0 => None,
                    n => Some(["US", "FR", "DE", "BR"][n as usize - 1]),
                },
            }
        })
        .collect()
}

async fn push(lockstep: &Lockstep, payment: &Payment) -> lockstep::pipeline::PushedView {
    let mut pushed = lockstep
        .push_json(
            None,
            "payments",
            &payment.columns(),
            PushTarget::OnlineAndOffline,
        )
        .await
        .unwrap();
    assert_eq!(pushed.len(), 1);
    pushed.pop().unwrap()
}

/// Every user (and two never seen) at time `at`.
fn entities(at: i64) -> RecordBatch {
    let users: Vec<i64> = (0..USERS + 2).collect();
    user_rows(&users, at)
}

fn request() -> OnlineRequest {
    OnlineRequest {
        project: Some("payments".into()),
        entities: lockstep_tests::entity_rows(json!({ "user_id": [0] })),
        features: vec![format!("{VIEW}:payments_10m")],
        ..OnlineRequest::default()
    }
}

fn every_aggregate() -> TrainingSetRequest {
    TrainingSetRequest {
        project: Some("payments".into()),
        features: vec![format!("{VIEW}:*")],
        ..TrainingSetRequest::default()
    }
}

/// Online at `at` equals offline at `at` for every user; returns values present.
async fn check(lockstep: &Lockstep, at: i64) -> usize {
    assert_parity(lockstep, every_aggregate(), &entities(at), at)
        .await
        .0
}

async fn pushed_one_by_one(backend: TestBackend) {
    let lockstep = open(&backend).await;
    let mut random = SplitMix64(42);
    let payments = payments(&mut random, 600);
    let mut moments = 0;
    let mut present = 0;
    for (index, payment) in payments.iter().enumerate() {
        let pushed = push(&lockstep, payment).await;
        assert_eq!((pushed.written_online, pushed.too_late), (1, 0));
        // A random moment before the next payment, now and then.
        if random.next_u64().is_multiple_of(40) {
            let next = payments.get(index + 1).map_or(payment.at + HOUR, |p| p.at);
            let at = payment.at + (random.next_u64() % (next - payment.at) as u64) as i64;
            present += check(&lockstep, at).await;
            moments += 1;
        }
    }
    assert!(moments >= 8, "{moments} moments");
    let last = payments.last().unwrap().at;
    // Later: short windows empty, long ones and the lifetime still there; past the ttl,
    // nothing (OUTSIDE_MAX_AGE online).
    for later in [last + 3 * HOUR, last + 30 * HOUR] {
        present += check(&lockstep, later).await;
    }
    assert!(present > 2_000, "only {present} values present");
    assert_eq!(check(&lockstep, last + 50 * HOUR).await, 0);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_pushed_one_by_one_equal_the_training_set_on_redis() {
    pushed_one_by_one(TestBackend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_pushed_one_by_one_equal_the_training_set_embedded() {
    pushed_one_by_one(TestBackend::sqlite()).await;
}

async fn out_of_order(backend: TestBackend) {
    let lockstep = open(&backend).await;
    let mut random = SplitMix64(7);
    let payments = payments(&mut random, 400);
    // Delivered up to 8 minutes late (the lateness is 10): out of order, none refused.
    let mut arrivals: Vec<(i64, &Payment)> = payments
        .iter()
        .map(|p| (p.at + (random.next_u64() % (8 * MINUTE as u64)) as i64, p))
        .collect();
    arrivals.sort_by_key(|(arrival, _)| *arrival);
    assert!(arrivals.windows(2).any(|w| w[0].1.at > w[1].1.at));
    for (_, payment) in &arrivals {
        let pushed = push(&lockstep, payment).await;
        assert_eq!(pushed.too_late, 0, "{payment:?}");
    }
    let last = payments.last().unwrap().at;
    assert!(check(&lockstep, last).await > 200);
    assert!(check(&lockstep, last + 40 * MINUTE).await > 100);

    // Events older than their user's newest by more than 10 minutes are refused: written
    // to neither store, counted and reported.
    let mut late = payments[payments.len() - 1].clone();
    late.at -= 11 * MINUTE;
    late.amount = Some(1e9);
    let before = check(&lockstep, last).await;
    let pushed = push(&lockstep, &late).await;
    assert_eq!(
        (pushed.too_late, pushed.written_online, pushed.rows),
        (1, 0, 0)
    );
    assert_eq!(check(&lockstep, last).await, before);
    let metrics = lockstep.metrics_text().await;
    assert!(
        metrics.contains(&format!("lockstep_late_events_total{{view=\"{VIEW}\"}} 1")),
        "{metrics}"
    );

    // Deleted, then rebuilt from the offline events, the online states answer the same.
    lockstep
        .rehydrate(Some("payments".into()), vec![], true, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        lockstep
            .get_online_features_at(&request(), last)
            .await
            .unwrap()
            .columns[1]
            .statuses[0],
        Status::NotFound,
        "the states were deleted (and the data is older than the ttl before now)"
    );
    let rebuilt = lockstep
        .materialize(
            &MaterializeRequest {
                project: Some("payments".into()),
                from: Some(EARLIEST),
                to: Some(last + 1),
                ..MaterializeRequest::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(rebuilt[0].rows, payments.len() as u64);
    assert_eq!(rebuilt[0].written, USERS as u64);
    assert_eq!(check(&lockstep, last).await, before);
    assert!(check(&lockstep, last + 5 * HOUR).await > 100);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_within_the_lateness_agree_and_later_ones_are_counted_on_redis() {
    out_of_order(TestBackend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_within_the_lateness_agree_and_later_ones_are_counted_embedded() {
    out_of_order(TestBackend::sqlite()).await;
}
