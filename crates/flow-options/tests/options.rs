//! flow-options' one test binary: a value list names, parses and refuses as one.

use flow_options::{NamedOption, NamedValue, UnknownName};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fruit {
    Apple,
    Pear,
}

impl Fruit {
    const ALL: [Fruit; 2] = [Fruit::Apple, Fruit::Pear];

    fn name(self) -> &'static str {
        match self {
            Fruit::Apple => "apple",
            Fruit::Pear => "pear",
        }
    }
}

flow_options::named_value!(Fruit, "fruit");

#[test]
fn a_value_list_parses_prints_and_lists_its_forms() {
    for fruit in <Fruit as NamedValue>::ALL {
        assert_eq!(fruit.to_string().parse::<Fruit>(), Ok(*fruit));
    }
    assert_eq!(Fruit::forms(), vec!["apple", "pear"]);
    let error = "plum".parse::<Fruit>().expect_err("not a fruit");
    assert_eq!(error, UnknownName { what: "fruit", name: "plum".into(), valid: "apple, pear".into() });
    assert_eq!(error.to_string(), "unknown fruit `plum` (valid: apple, pear)");
    assert_eq!(Fruit::from_form("Apple"), None, "names are exact");
}
