//! The frame every console page shares (language, direction, menu, who is signed in),
//! and the small pieces pages are built from. maud escapes every value put into a page:
//! a note with markup in it is shown as text.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;
use ztgw_api::console::OperatorRole;

use super::auth::Operator;
use super::i18n::{Lang, Msg};

/// The stylesheet, served at [`CSS_PATH`] (the only asset; no script anywhere).
pub const CSS: &str = include_str!("console.css");
pub const CSS_PATH: &str = "/static/console.css";

/// What a page is rendered for: the operator, their language, the page's path and the
/// CSRF token its forms carry.
#[derive(Debug)]
pub struct Page<'a> {
    pub operator: &'a Operator,
    pub lang: Lang,
    pub path: &'a str,
    pub csrf: String,
}

impl Page<'_> {
    pub fn t(&self, m: Msg) -> &'static str {
        self.lang.t(m)
    }

    /// Whether this operator may act (security unit) or only see (auditor).
    pub fn may_act(&self) -> bool {
        self.operator.role.may_act()
    }
}

/// The menu: path and label, in order.
const MENU: &[(&str, Msg)] = &[
    ("/", Msg::Overview),
    ("/devices", Msg::Devices),
    ("/employees", Msg::Employees),
    ("/sessions", Msg::Sessions),
    ("/incidents", Msg::Incidents),
    ("/overrides", Msg::Overrides),
    ("/policy", Msg::Policy),
    ("/journal", Msg::Journal),
    ("/reports", Msg::Reports),
];

/// A whole page: `title` as its heading, `body` as its content.
pub fn frame(page: &Page, title: &str, body: Markup) -> Markup {
    let lang = page.lang;
    let role = match page.operator.role {
        OperatorRole::SecurityUnit => Msg::RoleSecurityUnit,
        OperatorRole::Auditor => Msg::RoleAuditor,
    };
    let section = MENU
        .iter()
        .filter(|(p, _)| *p != "/" && page.path.starts_with(p))
        .map(|(p, _)| *p)
        .next()
        .unwrap_or("/");
    html! {
        (DOCTYPE)
        html lang=(lang.code()) dir=(lang.dir()) {
            (head(lang, title))
            body {
                a class="skip" href="#main" { (lang.t(Msg::SkipToContent)) }
                header {
                    p class="brand" { (lang.t(Msg::Console)) }
                    nav aria-label=(lang.t(Msg::MainMenu)) {
                        ul {
                            @for (path, label) in MENU {
                                li {
                                    @if *path == section {
                                        a href=(path) aria-current="page" { (lang.t(*label)) }
                                    } @else {
                                        a href=(path) { (lang.t(*label)) }
                                    }
                                }
                            }
                        }
                    }
                    p class="who" {
                        (lang.t(Msg::SignedInAs)) " "
                        strong { (page.operator.name.as_str()) }
                        " (" (lang.t(role)) ")"
                    }
                    (switch(lang, page.path))
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page's `<head>`: its title, and the stylesheet (the only asset).
fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (lang.t(Msg::Console)) }
            link rel="stylesheet" href=(CSS_PATH);
        }
    }
}

/// The language switch: links to this page in the other languages.
fn switch(lang: Lang, path: &str) -> Markup {
    html! {
        nav class="lang" aria-label=(lang.t(Msg::Language)) {
            ul {
                @for l in Lang::ALL {
                    li {
                        @if l == lang {
                            span lang=(l.code()) aria-current="true" { (l.name()) }
                        } @else {
                            a href=(format!("{path}?lang={}", l.code())) lang=(l.code()) hreflang=(l.code()) { (l.name()) }
                        }
                    }
                }
            }
        }
    }
}

/// A page for someone not signed in (no menu: there is nothing they may open).
pub fn refusal(lang: Lang, title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) dir=(lang.dir()) {
            (head(lang, title))
            body {
                header { p class="brand" { (lang.t(Msg::Console)) } (switch(lang, "/")) }
                main id="main" {
                    h1 { (title) }
                    p class="error" role="alert" { (text) }
                }
            }
        }
    }
}

/// The hidden CSRF field every form that posts carries.
pub fn csrf_field(page: &Page) -> Markup {
    html! { input type="hidden" name="csrf" value=(page.csrf); }
}

/// The box a destructive action needs ticked.
pub fn confirm_box(page: &Page, id: &str) -> Markup {
    html! {
        p class="confirm" {
            input type="checkbox" id=(id) name="confirm" value="yes" required;
            " "
            label for=(id) { (page.t(Msg::Confirm)) }
        }
    }
}

/// A labelled text field.
pub fn field(id: &str, name: &str, label: &str, value: Option<&str>, required: bool) -> Markup {
    html! {
        p {
            label for=(id) { (label) }
            input type="text" id=(id) name=(name) value=[value] required[required] maxlength="500";
        }
    }
}

/// A labelled choice among `options` (value, label).
pub fn select(id: &str, name: &str, label: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        p {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options { option value=(value) { (text) } }
            }
        }
    }
}

/// A labelled note (free text, optional).
pub fn note(page: &Page, id: &str) -> Markup {
    html! {
        p {
            label for=(id) { (page.t(Msg::Note)) " (" (page.t(Msg::Optional)) ")" }
            textarea id=(id) name="note" maxlength="500" rows="2" {}
        }
    }
}

/// What an action did, with the way back.
pub fn done(page: &Page, message: &str, back: &str) -> Markup {
    frame(
        page,
        page.t(Msg::Done),
        html! {
            p class="done" role="status" { (message) }
            p { a href=(back) { (page.t(Msg::Back)) } }
        },
    )
}

/// Why something did not work, with the way back.
pub fn failed(page: &Page, title: &str, message: &str, back: &str) -> Markup {
    frame(
        page,
        title,
        html! {
            p class="error" role="alert" { (message) }
            p { a href=(back) { (page.t(Msg::Back)) } }
        },
    )
}

/// A time as people read it, `2027-04-06 09:12 UTC`, kept left to right in Arabic pages.
pub fn when(t: OffsetDateTime) -> Markup {
    let t = t.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    let iso = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    html! { time datetime=(iso) dir="ltr" { (text) } }
}

/// Markup made elsewhere and already safe (an SVG drawn by a library from our data).
pub fn trusted(svg: String) -> Markup {
    PreEscaped(svg)
}
