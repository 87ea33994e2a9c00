//! Symbolic dimensions in canonical form: integer polynomials over named dimensions.
//!
//! A [`Dim`] is a sum of monomials with integer coefficients; each monomial is a sorted product
//! of atoms. An atom is a dimension name or an exact quotient that could not be simplified
//! (`D/H`). Two dims are equal exactly when their canonical forms are equal, so `2*D + 1` and
//! `D + 1 + D` compare equal, and `D` never equals `E` even when both happen to be 64.

use std::collections::BTreeMap;
use std::fmt;

/// The batch dimension: bound by every spec, sized by each batch at run time.
pub const BATCH: &str = "B";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Atom {
    Sym(String),
    /// An unsimplified quotient, numerator / denominator.
    Div(Box<Dim>, Box<Dim>),
}

/// A canonical integer polynomial over dimension atoms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dim {
    /// Monomial (sorted atoms; empty for the constant term) to non-zero coefficient.
    terms: BTreeMap<Vec<Atom>, i64>,
}

/// Why a dimension could not be evaluated to a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    Unbound(String),
    NotDivisible { num: i64, den: i64 },
    DivByZero,
    Overflow,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Unbound(s) => write!(f, "dimension `{s}` has no value"),
            EvalError::NotDivisible { num, den } => write!(f, "{num} is not divisible by {den}"),
            EvalError::DivByZero => write!(f, "division by zero"),
            EvalError::Overflow => write!(f, "dimension arithmetic overflows"),
        }
    }
}

impl Dim {
    pub fn constant(c: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if c != 0 {
            terms.insert(vec![], c);
        }
        Dim { terms }
    }

    /// The batch dimension `B`.
    pub fn batch() -> Dim {
        Dim::sym(BATCH)
    }

    pub fn sym(name: &str) -> Dim {
        Dim::atom(Atom::Sym(name.to_string()))
    }

    fn atom(a: Atom) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![a], 1);
        Dim { terms }
    }

    /// The value if this dim has no symbols.
    pub(crate) fn as_constant(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&vec![]).copied(),
            _ => None,
        }
    }

    /// The names this dim mentions, sorted and deduplicated.
    /// Whether the dim is at most linear in `sym`: no monomial holds it twice and no
    /// unsimplified quotient holds it at all.
    pub(crate) fn linear_in(&self, sym: &str) -> bool {
        self.terms.keys().all(|mono| {
            let mut count = 0;
            mono.iter().all(|atom| match atom {
                Atom::Sym(s) => {
                    count += usize::from(s == sym);
                    count <= 1
                }
                Atom::Div(n, d) => !n.symbols().iter().chain(&d.symbols()).any(|s| s == sym),
            })
        })
    }

    pub(crate) fn symbols(&self) -> Vec<String> {
        let mut out = vec![];
        for mono in self.terms.keys() {
            for atom in mono {
                match atom {
                    Atom::Sym(s) => out.push(s.clone()),
                    Atom::Div(n, d) => {
                        out.extend(n.symbols());
                        out.extend(d.symbols());
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn add(&self, other: &Dim) -> Dim {
        let mut terms = self.terms.clone();
        for (mono, c) in &other.terms {
            let e = terms.entry(mono.clone()).or_insert(0);
            *e = e.saturating_add(*c);
            if *e == 0 {
                terms.remove(mono);
            }
        }
        Dim { terms }
    }

    pub fn neg(&self) -> Dim {
        Dim { terms: self.terms.iter().map(|(m, c)| (m.clone(), c.saturating_neg())).collect() }
    }

    pub fn sub(&self, other: &Dim) -> Dim {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        let mut out = Dim::default();
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let mut mono: Vec<Atom> = ma.iter().chain(mb.iter()).cloned().collect();
                mono.sort();
                let mut terms = BTreeMap::new();
                terms.insert(mono, ca.saturating_mul(*cb));
                out = out.add(&Dim { terms });
            }
        }
        out
    }

    /// Exact division. Simplifies when the divisor is a constant dividing every coefficient, or
    /// when the dividend is a constant multiple of the divisor; otherwise keeps a quotient atom
    /// whose divisibility is checked when evaluated.
    pub(crate) fn div(&self, other: &Dim) -> Dim {
        if let Some(d) = other.as_constant() {
            if d == 1 {
                return self.clone();
            }
            if d != 0 && self.terms.values().all(|c| c % d == 0) {
                return Dim { terms: self.terms.iter().map(|(m, c)| (m.clone(), c / d)).collect() };
            }
        }
        if self == other && !self.terms.is_empty() {
            return Dim::constant(1);
        }
        if let Some((mono, c)) = other.terms.iter().next().filter(|_| other.terms.len() == 1) {
            // Monomial divisor: cancel it from every term that contains it.
            if !mono.is_empty() && self.terms.iter().all(|(m, k)| contains_all(m, mono) && k % c == 0) {
                let terms = self.terms.iter().map(|(m, k)| (remove_all(m, mono), k / c)).collect();
                return Dim { terms };
            }
        }
        Dim::atom(Atom::Div(Box::new(self.clone()), Box::new(other.clone())))
    }

    /// Substitutes named dims by other dims (used when a block's dimension variables are bound).
    #[cfg(test)]
    pub(crate) fn substitute(&self, map: &std::collections::HashMap<String, Dim>) -> Dim {
        let mut out = Dim::default();
        for (mono, c) in &self.terms {
            let mut term = Dim::constant(*c);
            for atom in mono {
                let a = match atom {
                    Atom::Sym(s) => map.get(s).cloned().unwrap_or_else(|| Dim::sym(s)),
                    Atom::Div(n, d) => n.substitute(map).div(&d.substitute(map)),
                };
                term = term.mul(&a);
            }
            out = out.add(&term);
        }
        out
    }

    /// Evaluates with the given symbol values.
    pub fn eval(&self, values: &dyn Fn(&str) -> Option<i64>) -> Result<i64, EvalError> {
        let mut total: i64 = 0;
        for (mono, c) in &self.terms {
            let mut v = *c;
            for atom in mono {
                let a = match atom {
                    Atom::Sym(s) => values(s).ok_or_else(|| EvalError::Unbound(s.clone()))?,
                    Atom::Div(n, d) => {
                        let (n, d) = (n.eval(values)?, d.eval(values)?);
                        if d == 0 {
                            return Err(EvalError::DivByZero);
                        }
                        if n % d != 0 {
                            return Err(EvalError::NotDivisible { num: n, den: d });
                        }
                        n / d
                    }
                };
                v = v.checked_mul(a).ok_or(EvalError::Overflow)?;
            }
            total = total.checked_add(v).ok_or(EvalError::Overflow)?;
        }
        Ok(total)
    }
}

fn contains_all(m: &[Atom], sub: &[Atom]) -> bool {
    let mut rest = m.to_vec();
    for a in sub {
        match rest.iter().position(|x| x == a) {
            Some(i) => {
                rest.remove(i);
            }
            None => return false,
        }
    }
    true
}

fn remove_all(m: &[Atom], sub: &[Atom]) -> Vec<Atom> {
    let mut rest = m.to_vec();
    for a in sub {
        if let Some(i) = rest.iter().position(|x| x == a) {
            rest.remove(i);
        }
    }
    rest
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => write!(f, "{s}"),
            Atom::Div(n, d) => {
                let wrap = |x: &Dim| {
                    if x.terms.len() > 1 || x.terms.keys().any(|m| m.len() > 1) {
                        format!("({x})")
                    } else {
                        x.to_string()
                    }
                };
                write!(f, "{}/{}", wrap(n), wrap(d))
            }
        }
    }
}

impl fmt::Display for Dim {
    /// Highest degree first, then by name; the constant last: `2*D*H + T + 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return write!(f, "0");
        }
        let mut monos: Vec<(&Vec<Atom>, &i64)> = self.terms.iter().collect();
        monos.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
        for (i, (mono, c)) in monos.into_iter().enumerate() {
            let c = *c;
            let (sign, abs) = if c < 0 { ("-", c.unsigned_abs()) } else { ("+", c as u64) };
            if i == 0 {
                if c < 0 {
                    write!(f, "-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            let atoms: Vec<String> = mono.iter().map(|a| a.to_string()).collect();
            match (abs, atoms.is_empty()) {
                (_, true) => write!(f, "{abs}")?,
                (1, false) => write!(f, "{}", atoms.join("*"))?,
                (_, false) => write!(f, "{abs}*{}", atoms.join("*"))?,
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Dim {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dim {
        Dim::sym(s)
    }
    fn c(v: i64) -> Dim {
        Dim::constant(v)
    }

    #[test]
    fn addition_is_canonical() {
        assert_eq!(d("D").add(&c(1)).add(&d("D")), c(2).mul(&d("D")).add(&c(1)));
        assert_eq!(d("D").add(&d("T")), d("T").add(&d("D")));
        assert_eq!(d("D").sub(&d("D")), c(0));
        assert_eq!(d("D").sub(&d("D")).to_string(), "0");
    }

    #[test]
    fn multiplication_distributes_and_commutes() {
        let t1 = d("T").add(&c(1));
        assert_eq!(t1.mul(&d("D")), d("D").mul(&d("T")).add(&d("D")));
        assert_eq!(d("D").mul(&d("H")), d("H").mul(&d("D")));
        assert_eq!(t1.mul(&d("D")).to_string(), "D*T + D");
    }

    #[test]
    fn display_orders_terms() {
        let e = c(16).add(&c(5).mul(&d("D")));
        assert_eq!(e.to_string(), "5*D + 16");
        assert_eq!(c(0).sub(&d("D")).add(&c(3)).to_string(), "-D + 3");
        assert_eq!(d("T").sub(&c(1)).to_string(), "T - 1");
        assert_eq!(d("H").mul(&d("D")).mul(&c(2)).add(&d("T")).to_string(), "2*D*H + T");
    }

    #[test]
    fn division_simplifies_when_exact() {
        assert_eq!(c(4).mul(&d("D")).div(&c(2)), c(2).mul(&d("D")));
        assert_eq!(d("D").mul(&d("H")).div(&d("H")), d("D"));
        assert_eq!(d("D").div(&d("D")), c(1));
        let q = d("D").div(&d("H"));
        assert_eq!(q.to_string(), "D/H");
        assert_eq!(q.symbols(), vec!["D".to_string(), "H".to_string()]);
        assert_eq!(d("D").add(&c(1)).div(&c(2)).to_string(), "(D + 1)/2");
    }

    #[test]
    fn evaluation_checks_divisibility() {
        let vals = |s: &str| match s {
            "D" => Some(64),
            "H" => Some(4),
            "T" => Some(30),
            "K" => Some(3),
            _ => None,
        };
        assert_eq!(d("D").div(&d("H")).eval(&vals), Ok(16));
        assert_eq!(d("T").add(&c(1)).mul(&d("D")).eval(&vals), Ok(31 * 64));
        assert_eq!(d("D").div(&d("K")).eval(&vals), Err(EvalError::NotDivisible { num: 64, den: 3 }));
        assert_eq!(d("X").eval(&vals), Err(EvalError::Unbound("X".into())));
        assert_eq!(d("D").div(&c(0)).eval(&vals), Err(EvalError::DivByZero));
    }

    #[test]
    fn substitution_binds_variables() {
        let mut m = std::collections::HashMap::new();
        m.insert("N".to_string(), d("T").add(&c(1)));
        let e = d("N").mul(&d("D"));
        assert_eq!(e.substitute(&m), d("T").mul(&d("D")).add(&d("D")));
    }

    #[test]
    fn distinct_symbols_never_compare_equal() {
        assert_ne!(d("D"), d("E"));
        assert_ne!(d("D").add(&c(1)), d("D"));
    }
}
