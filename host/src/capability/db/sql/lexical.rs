//! Checks on the token stream, before parsing: token sequences the database reads
//! differently from sqlparser, and a bound on how deeply the parsed tree can nest.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::{SqlDialect, SqlError};

/// Largest nesting estimate (see [`nesting_estimate`]) accepted before parsing.
///
/// The parser builds operator chains (`a + b + ...`, `x OR y OR ...`, `... UNION ...`) in
/// a loop, so their depth is not bounded by its recursion limit, while walking and
/// dropping the tree recurse once per level. Unchecked, a long chain overflows the stack
/// and aborts the host (even on a parse error, when the parser drops what it built).
/// At this bound analysis needs well under 1 MiB of stack in a debug build.
pub(super) const MAX_NESTING: usize = 1000;

/// Rejects token sequences that the database reads differently from sqlparser, where the
/// difference could hide a table or function from the analysis.
pub(super) fn check_tokens(tokens: &[TokenWithSpan], dialect: SqlDialect) -> Result<(), SqlError> {
    if dialect != SqlDialect::Postgres {
        return Ok(());
    }
    let is_bare_u = |token: &Token| match token {
        Token::Word(word) => word.quote_style.is_none() && word.value.eq_ignore_ascii_case("u"),
        _ => false,
    };
    let is_quoted = |token: &Token| match token {
        Token::Word(word) => word.quote_style.is_some(),
        _ => false,
    };
    for window in tokens.windows(3) {
        // Postgres reads `U&"pg\005fsleep"` as the identifier pg_sleep; sqlparser sees
        // `U & "pg\005fsleep"`, so a forbidden function could pass under an escaped name.
        if let [u, amp, quoted] = window
            && is_bare_u(&u.token)
            && amp.token == Token::Ampersand
            && is_quoted(&quoted.token)
        {
            return Err(SqlError::Parse(
                "Unicode-escaped identifiers (U&\"...\") are not supported".to_string(),
            ));
        }
    }
    for token in tokens {
        // sqlparser accepts `$1$...$1$` as a dollar-quoted string; Postgres reads `$1` as a
        // parameter and the text after it as SQL.
        if let Token::DollarQuotedString(quoted) = &token.token
            && quoted
                .tag
                .as_deref()
                .is_some_and(|tag| tag.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(SqlError::Parse(
                "dollar-quote tags must not start with a digit".to_string(),
            ));
        }
    }
    Ok(())
}

/// An upper bound on how deeply the parser can nest the tree built from these tokens.
///
/// Within one bracket level, a node can only sit below nodes made from operator tokens
/// (symbols and keywords) of its own comma-separated item, below its bracket, and below
/// the UNION/INTERSECT/EXCEPT chain of that level (the one chain that spans commas). So the
/// bound is, per level: 1 + set operations + the worst item's operator count plus the
/// deepest bracket group inside it. Identifiers, literals and commas do not count, which
/// keeps long VALUES and IN lists cheap; keywords count even where they are not operators.
pub(super) fn nesting_estimate(tokens: &[TokenWithSpan]) -> usize {
    #[derive(Default)]
    struct Level {
        set_operations: usize,
        worst_item: usize,
        item_operators: usize,
        item_deepest_group: usize,
    }
    impl Level {
        fn end_item(&mut self) {
            self.worst_item = self
                .worst_item
                .max(self.item_operators + self.item_deepest_group);
            self.item_operators = 0;
            self.item_deepest_group = 0;
        }
        fn depth(mut self) -> usize {
            self.end_item();
            1 + self.set_operations + self.worst_item
        }
    }

    let mut current = Level::default();
    let mut enclosing: Vec<Level> = Vec::new();
    for token in tokens {
        match &token.token {
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => {}
            Token::Word(word) if word.keyword == Keyword::NoKeyword => {}
            Token::Word(word)
                if matches!(
                    word.keyword,
                    Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS
                ) =>
            {
                current.set_operations += 1;
            }
            Token::Comma | Token::SemiColon => current.end_item(),
            Token::LParen | Token::LBracket | Token::LBrace => {
                // Brackets can follow each other in a chain (`int[][]`), so each counts.
                current.item_operators += 1;
                enclosing.push(std::mem::take(&mut current));
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                // An unbalanced closer is a parse error; the outermost level stays.
                if let Some(outer) = enclosing.pop() {
                    let depth = std::mem::replace(&mut current, outer).depth();
                    current.item_deepest_group = current.item_deepest_group.max(depth);
                }
            }
            _ => current.item_operators += 1,
        }
    }
    // Unclosed brackets are a parse error, but the parser builds (and drops) their
    // contents first.
    let mut depth = current.depth();
    while let Some(mut outer) = enclosing.pop() {
        outer.item_deepest_group = outer.item_deepest_group.max(depth);
        depth = outer.depth();
    }
    depth
}
