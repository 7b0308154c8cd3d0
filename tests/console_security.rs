//! The staff console's guards, over plain HTTP: the session cookie's flags, CSRF on every
//! write, a viewer's session cannot write, sign-out ends the session on the server, writes are
//! audited under the signed-in name (tokens and username/password accounts alike). The
//! browser-side check that HTML from the ledger or a note never runs is in console_browser.rs.

mod common;
mod console_support;

use common::{Proto, query_from, request};
use console_support::*;
use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};

const PASSWORD: &str = "a long console password";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in with `form` fields; returns the `pg_session=…` pair and the Set-Cookie line.
async fn sign_in(base: &str, form: &[(&str, &str)]) -> (String, String) {
    let r = http()
        .post(format!("{base}/signin"))
        .form(form)
        .send()
        .await
        .expect("sign-in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{form:?}");
    let set = r.headers()[SET_COOKIE].to_str().expect("ascii").to_string();
    (set.split(';').next().expect("pair").to_string(), set)
}

/// The CSRF token in a page's forms.
async fn csrf(base: &str, cookie: &str, path: &str) -> String {
    let html = get(base, cookie, path).await.1;
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 64].to_string()
}

async fn get(base: &str, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = http()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get");
    (r.status(), r.text().await.expect("body"))
}

async fn post(base: &str, cookie: &str, path: &str, form: &[(&str, &str)]) -> StatusCode {
    http()
        .post(format!("{base}{path}"))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
        .status()
}

/// The incident's notes and the audit log, through the API as admin.
async fn api_json(bed: &common::TestBed, path: &str) -> serde_json::Value {
    http()
        .get(format!("{}{path}", bed.api_url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_writes_need_csrf_a_writing_role_and_a_live_session() {
    let hash = poolguard::console::password::hash(PASSWORD, 1000);
    let bed = bed(&format!(
        "[[console.users]]\nname = \"bob\"\nrole = \"investigator\"\npassword = \"{hash}\"\n"
    ))
    .await;
    let base = console_url(&bed);
    query_from(
        "127.0.0.7".parse().expect("ip"),
        bed.dns,
        Proto::Udp,
        &request("pool.minergate.com", RecordType::A, true),
    )
    .await;
    // The incident opens with the hit's batch (20 ms flush): poll, bounded.
    for _ in 0..200 {
        if api_json(&bed, "/api/v1/incidents").await["items"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let notes = |v: serde_json::Value| v["notes"].as_array().map(|a| a.len()).unwrap_or(0);

    // Wrong token: no session.
    let r = http()
        .post(format!("{base}/signin"))
        .form(&[("token", "nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());
    // Not signed in: pages send to the sign-in form, writes are refused.
    let r = http()
        .get(format!("{base}/incidents"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .expect("ascii")
            .starts_with("/signin")
    );
    assert_eq!(
        post(&base, "", "/incidents/1/notes", &[("text", "x")]).await,
        StatusCode::UNAUTHORIZED
    );

    // The cookie: HttpOnly, SameSite=Strict, expiring; Secure behind a TLS proxy.
    let (viewer, set) = sign_in(&base, &[("token", VIEWER)]).await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    let r = http()
        .post(format!("{base}/signin"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", VIEWER)])
        .send()
        .await
        .expect("post");
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("; Secure")
    );
    let r = http()
        .get(format!("{base}/"))
        .header("cookie", &viewer)
        .send()
        .await
        .expect("get");
    let csp = r.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );

    // A viewer: no write form on the page, and a forged write is refused by the API's role check.
    let (status, page) = get(&base, &viewer, "/incidents/1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("note-form") && !page.contains("status-form"));
    let token = csrf(&base, &viewer, "/").await;
    assert_eq!(
        post(
            &base,
            &viewer,
            "/incidents/1/notes",
            &[("csrf", &token), ("text", "viewer note")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &base,
            &viewer,
            "/quarantine",
            &[("csrf", &token), ("ip", "127.0.0.8"), ("reason", "x")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(notes(api_json(&bed, "/api/v1/incidents/1").await), 0);

    // An investigator: without the CSRF token, or with another session's, refused.
    let (alice, _) = sign_in(&base, &[("token", INVESTIGATOR)]).await;
    assert_eq!(
        post(&base, &alice, "/incidents/1/notes", &[("text", "no token")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &base,
            &alice,
            "/incidents/1/notes",
            &[("csrf", &token), ("text", "viewer's token")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &base,
            &alice,
            "/incidents/1",
            &[("status", "investigating")]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(notes(api_json(&bed, "/api/v1/incidents/1").await), 0);
    let mine = csrf(&base, &alice, "/incidents/1").await;
    assert_eq!(
        post(
            &base,
            &alice,
            "/incidents/1/notes",
            &[("csrf", &mine), ("text", "by alice")]
        )
        .await,
        StatusCode::SEE_OTHER
    );

    // A username/password account writes under its own name.
    let r = http()
        .post(format!("{base}/signin"))
        .form(&[("user", "bob"), ("password", "wrong")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (bob, _) = sign_in(&base, &[("user", "bob"), ("password", PASSWORD)]).await;
    let bobs = csrf(&base, &bob, "/incidents/1").await;
    assert_eq!(
        post(
            &base,
            &bob,
            "/incidents/1/notes",
            &[("csrf", &bobs), ("text", "by bob")]
        )
        .await,
        StatusCode::SEE_OTHER
    );
    let detail = api_json(&bed, "/api/v1/incidents/1").await;
    let authors: Vec<&str> = detail["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n["author"].as_str())
        .collect();
    assert!(
        authors.contains(&"alice") && authors.contains(&"bob"),
        "{authors:?}"
    );
    let audit = api_json(&bed, "/api/v1/audit").await.to_string();
    assert!(
        audit.contains("\"actor\":\"alice\"") && audit.contains("\"actor\":\"bob\""),
        "{audit}"
    );

    // Sign-out ends the session on the server: the old cookie opens nothing.
    assert_eq!(
        post(&base, &alice, "/signout", &[("csrf", &mine)]).await,
        StatusCode::SEE_OTHER
    );
    let r = http()
        .get(format!("{base}/incidents/1"))
        .header("cookie", &alice)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        post(
            &base,
            &alice,
            "/incidents/1/notes",
            &[("csrf", &mine), ("text", "after sign-out")]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(notes(api_json(&bed, "/api/v1/incidents/1").await), 2);
    // The other sessions are untouched.
    assert_eq!(get(&base, &bob, "/").await.0, StatusCode::OK);
    // The API itself still wants its bearer token: a console cookie is not one.
    let r = http()
        .get(format!("{}/api/v1/incidents", bed.api_url()))
        .header("cookie", &bob)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_can_be_off_or_on_its_own_listener() {
    // Off: the API's `/` is its JSON 404, as before the console existed.
    let off = bed("enabled = false\n").await;
    assert!(off.running().console_addr().is_none());
    let r = http()
        .get(format!("{}/", off.api_url()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("json")
    );

    // Its own listener: the console there, the API's listener without it.
    let own = bed("listen = \"127.0.0.1:0\"\n").await;
    let console = console_url(&own);
    assert_ne!(console, own.api_url());
    let r = http()
        .get(format!("{console}/signin"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.expect("body").contains("id=\"token\""));
    assert_eq!(
        http()
            .get(format!("{}/signin", own.api_url()))
            .send()
            .await
            .expect("get")
            .status(),
        StatusCode::NOT_FOUND
    );
    // Signed in there, the pages still read the API (in-process).
    let (cookie, _) = sign_in(&console, &[("token", VIEWER)]).await;
    let (status, html) = get(&console, &cookie, "/incidents").await;
    assert_eq!(status, StatusCode::OK, "{html}");
}

/// The query log's page takes the same who-filters as the hits': asked by owner, it lists the
/// queries of the addresses that person's machines held (here a ledger address), no other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_log_page_finds_a_persons_queries() {
    let bed = bed("").await;
    let base = console_url(&bed);
    for ip in ["127.0.0.8", "127.0.0.7"] {
        query_from(
            ip.parse().expect("address"),
            bed.dns,
            Proto::Udp,
            &request("www.example.test.", RecordType::A, true),
        )
        .await;
    }
    bed.running().flush().await.expect("flush");
    let (viewer, _) = sign_in(&base, &[("token", VIEWER)]).await;
    let (status, html) = get(&base, &viewer, "/hits?table=queries&owner=li+na").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"owner\""),
        "the owner box is on the form"
    );
    assert!(html.contains("127.0.0.8"), "Li Na's machine: {html}");
    assert!(!html.contains("127.0.0.7"), "not Zhang Wei's: {html}");
}
