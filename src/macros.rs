//! Two small tables written once instead of by hand: numeric protocol
//! fields with an `Unknown` arm (after smoltcp's `enum_with_unknown!`), and
//! drop reasons with their stable names and counter slots.

/// An enum over a numeric field: the values this crate names, an
/// `Unknown(raw)` arm for every other, and conversions both ways.
macro_rules! enum_with_unknown {
    (
        $( #[$meta:meta] )*
        pub enum $name:ident($ty:ty) {
            $( $( #[$variant_meta:meta] )* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $( #[$meta] )*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $( #[$variant_meta] )* $variant, )+
            /// Any other value.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                value.to_raw()
            }
        }

        impl $name {
            /// The value on the wire (usable in constants).
            #[allow(dead_code)]
            pub const fn to_raw(self) -> $ty {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

/// A fieldless enum of reasons with a stable name each, listed in `ALL` in
/// the order they are declared (and reported), and `index()` into an
/// array of `COUNT` counters.
macro_rules! reasons {
    (
        $( #[$meta:meta] )*
        pub enum $name:ident {
            $( $( #[$variant_meta:meta] )* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $( #[$meta] )*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $( #[$variant_meta] )* $variant, )+
        }

        impl $name {
            /// How many reasons there are.
            pub const COUNT: usize = [$( stringify!($variant) ),+].len();

            /// Every reason, in the order they are reported.
            pub const ALL: [$name; $name::COUNT] = [$( $name::$variant ),+];

            /// The stable name used in logs and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Its place in `ALL`, and in arrays of counters.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

#[cfg(test)]
mod tests {
    enum_with_unknown! {
        /// A field for the test.
        pub enum Field(u16) {
            /// One.
            One = 1,
            /// Two.
            Two = 0x0200,
        }
    }

    reasons! {
        /// Reasons for the test.
        pub enum Why {
            /// First.
            First = "first",
            /// Second.
            Second = "second_one",
        }
    }

    #[test]
    fn numbers_round_trip_and_the_rest_is_unknown() {
        for raw in [0u16, 1, 2, 0x0200, 0xffff] {
            assert_eq!(u16::from(Field::from(raw)), raw);
        }
        assert_eq!(Field::from(1), Field::One);
        assert_eq!(Field::from(0x0200), Field::Two);
        assert_eq!(Field::from(3), Field::Unknown(3));
    }

    #[test]
    fn reasons_are_listed_in_order_with_their_names() {
        assert_eq!(Why::COUNT, 2);
        assert_eq!(Why::ALL, [Why::First, Why::Second]);
        let names: Vec<&str> = Why::ALL.iter().map(|why| why.name()).collect();
        assert_eq!(names, ["first", "second_one"]);
        assert_eq!(Why::Second.index(), 1);
    }
}
