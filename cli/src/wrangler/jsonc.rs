//! wrangler.jsonc's JSON with comments and trailing commas, made plain JSON for serde_json.

/// JSON with comments (`//`, `/* */`) and trailing commas, as wrangler.jsonc allows, made plain
/// JSON. Comments become spaces (newlines kept), so serde_json's line and column numbers still
/// point into the file.
pub(super) fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    // the byte offset in `out` of a comma that may turn out to be trailing
    let mut comma: Option<usize> = None;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                comma = None;
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                    out.push(' ');
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("  ");
                let mut last = ' ';
                for c in chars.by_ref() {
                    out.push(if c == '\n' { '\n' } else { ' ' });
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            c if c.is_whitespace() => out.push(c),
            c => {
                if let Some(at) = comma.take()
                    && (c == '}' || c == ']')
                {
                    out.replace_range(at..at + 1, " ");
                }
                if c == ',' {
                    comma = Some(out.len());
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrangler::Var;
    use crate::wrangler::tests::{errors_in, project};
    use serde_json::Value;

    #[test]
    fn a_jsonc_project_with_comments_and_trailing_commas_is_read() {
        let text = r#"{
  // the Worker
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "chat", /* its name */
  "main": "src/index.ts",
  "vars": { "URL": "http://a//b", "Q": "/* not a comment */", },
  "durable_objects": {
    "bindings": [{ "name": "ROOMS", "class_name": "ChatRoom", },],
  },
  "migrations": [{ "tag": "v1", "new_sqlite_classes": ["ChatRoom"] }],
}"#;
        for file in ["wrangler.jsonc", "wrangler.json"] {
            let (_dir, p) = project(file, text, None);
            let p = p.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, "chat");
            assert_eq!(p.vars["URL"], Var::Text("http://a//b".into()));
            assert_eq!(p.vars["Q"], Var::Text("/* not a comment */".into()));
            assert_eq!(p.bindings[0].class_name, "ChatRoom");
            assert!(
                p.warnings.is_empty() && p.notes.is_empty(),
                "{:?} {:?}",
                p.warnings,
                p.notes
            );
        }
    }

    #[test]
    fn jsonc_errors_point_at_the_line_in_the_file() {
        let errors = errors_in(
            "wrangler.jsonc",
            "{\n  // a comment\n  \"name\": \"x\",\n  \"main\": nope,\n}",
            None,
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(": not valid JSON: "), "{errors:?}");
        assert!(errors[0].contains("line 4"), "{errors:?}");
    }

    #[test]
    fn strip_jsonc_keeps_strings_and_positions() {
        let text = "{\"a\": \"x//y\", // c\n \"b\": [1, 2, /* c\n */ ], \"c\": \"\\\"/*\",}";
        let plain = strip_jsonc(text);
        assert_eq!(plain.len(), text.len());
        assert_eq!(plain.lines().count(), text.lines().count());
        let value: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "x//y", "b": [1, 2], "c": "\"/*"})
        );
    }
}
