//! CFI codes (ISO 10962:2021, Classification of Financial Instruments), decoded with no I/O.
//!
//! A CFI code is six upper-case letters: the category, the group within it, and four
//! attributes whose meaning depends on the group. The tables below hold every category and
//! group of the 2021 edition and the letters each attribute position allows. `X` is "not
//! applicable/undefined" at any attribute position, as the standard says. A letter the
//! standard does not define at its position is never guessed: [`Cfi::decode`] reports it as
//! undefined and marks the whole code (`undefined()`), so a page can flag it.
//!
//! The filter forms of the ISIN list take a category (`E`) or a category and group (`ES`):
//! [`CfiFilter`].

use std::fmt;

/// One attribute position of a group: what it says, and the letters it allows (besides `X`).
#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    pub name: &'static str,
    pub values: &'static [(u8, &'static str)],
}

/// A group of a category, with its four attributes.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub code: u8,
    pub name: &'static str,
    pub attributes: [Attribute; 4],
}

/// A category (the code's first letter).
#[derive(Debug, Clone, Copy)]
pub struct Category {
    pub code: u8,
    pub name: &'static str,
    pub groups: &'static [Group],
}

/// An attribute position the standard leaves "not applicable" for the group: only `X`.
const NA: Attribute = Attribute { name: "not applicable", values: &[] };

const fn attr(name: &'static str, values: &'static [(u8, &'static str)]) -> Attribute {
    Attribute { name, values }
}

// Attribute tables shared by several groups.
const VOTING: Attribute = attr(
    "voting right",
    &[(b'V', "voting"), (b'N', "non-voting"), (b'R', "restricted voting"), (b'E', "enhanced voting")],
);
const RESTRICTIONS: Attribute =
    attr("ownership/transfer/sales restrictions", &[(b'T', "restrictions"), (b'U', "free")]);
const PAYMENT: Attribute =
    attr("payment status", &[(b'O', "nil paid"), (b'P', "partly paid"), (b'F', "fully paid")]);
const FORM: Attribute = attr(
    "form",
    &[(b'B', "bearer"), (b'R', "registered"), (b'N', "bearer/registered"), (b'M', "others (miscellaneous)")],
);
const REDEMPTION_PREF: Attribute = attr(
    "redemption",
    &[
        (b'R', "redeemable"),
        (b'E', "extendible"),
        (b'T', "redeemable/extendible"),
        (b'G', "exchangeable"),
        (b'A', "redeemable/exchangeable/extendible"),
        (b'C', "redeemable/exchangeable"),
        (b'N', "perpetual"),
    ],
);
/// Income of preferred/preference shares (EP, EF): no "dividends" letter, unlike receipts (ED).
const INCOME_PREF: Attribute = attr(
    "income",
    &[
        (b'F', "fixed rate income"),
        (b'C', "cumulative, fixed rate income"),
        (b'P', "participating income"),
        (b'Q', "cumulative, participating income"),
        (b'A', "adjustable/variable rate income"),
        (b'N', "normal rate income"),
        (b'U', "auction rate income"),
    ],
);
const INCOME_RECEIPT: Attribute = attr(
    "income",
    &[
        (b'F', "fixed rate income"),
        (b'C', "cumulative, fixed rate income"),
        (b'P', "participating income"),
        (b'Q', "cumulative, participating income"),
        (b'A', "adjustable/variable rate income"),
        (b'N', "normal rate income"),
        (b'U', "auction rate income"),
        (b'D', "dividends"),
    ],
);
const UNDERLYING_STRUCTURED: Attribute = attr(
    "underlying assets",
    &[
        (b'B', "baskets"),
        (b'S', "equities"),
        (b'D', "debt instruments"),
        (b'G', "derivatives"),
        (b'T', "commodities"),
        (b'C', "currencies"),
        (b'I', "indices"),
        (b'N', "interest rates"),
        (b'M', "others (miscellaneous)"),
    ],
);
// The type of interest differs by debt group: bonds also allow cash payment (sukuk) and
// payment in kind; convertible bonds, bonds with warrants, medium-term notes and money market
// instruments payment in kind only; MBS, ABS and municipal bonds neither; receipts cash payment.
const INTEREST_BONDS: Attribute = attr(
    "type of interest or cash payment",
    &[
        (b'F', "fixed rate"),
        (b'Z', "zero rate/discounted"),
        (b'V', "variable"),
        (b'C', "cash payment"),
        (b'K', "payment in kind"),
    ],
);
const INTEREST_IN_KIND: Attribute = attr(
    "type of interest",
    &[(b'F', "fixed rate"), (b'Z', "zero rate/discounted"), (b'V', "variable"), (b'K', "payment in kind")],
);
const INTEREST: Attribute =
    attr("type of interest", &[(b'F', "fixed rate"), (b'Z', "zero rate/discounted"), (b'V', "variable")]);
const INTEREST_RECEIPT: Attribute = attr(
    "type of interest/cash payment",
    &[(b'F', "fixed rate"), (b'Z', "zero rate/discounted"), (b'V', "variable"), (b'C', "cash payment")],
);
const GUARANTEE: Attribute = attr(
    "guarantee or ranking",
    &[
        (b'T', "government/state guarantee"),
        (b'G', "joint guarantee"),
        (b'S', "secured"),
        (b'U', "unsecured/unguaranteed"),
        (b'P', "negative pledge"),
        (b'N', "senior"),
        (b'O', "senior subordinated"),
        (b'Q', "junior"),
        (b'J', "junior subordinated"),
        (b'C', "supranational"),
    ],
);
const REDEMPTION_DEBT: Attribute = attr(
    "redemption/reimbursement",
    &[
        (b'F', "fixed maturity"),
        (b'G', "fixed maturity with call feature"),
        (b'C', "fixed maturity with put feature"),
        (b'D', "fixed maturity with put and call"),
        (b'A', "amortization plan"),
        (b'B', "amortization plan with call feature"),
        (b'T', "amortization plan with put feature"),
        (b'L', "amortization plan with put and call"),
        (b'P', "perpetual"),
        (b'Q', "perpetual with call feature"),
        (b'R', "perpetual with put feature"),
        (b'E', "extendible"),
    ],
);
const DISTRIBUTION_STRUCTURED: Attribute = attr(
    "distribution",
    &[
        (b'F', "fixed interest payments"),
        (b'D', "dividend payments"),
        (b'V', "variable interest payments"),
        (b'Y', "no payments"),
        (b'M', "others (miscellaneous)"),
    ],
);
const UNDERLYING_DEBT_STRUCTURED: Attribute = attr(
    "underlying assets",
    &[
        (b'B', "baskets"),
        (b'S', "equities"),
        (b'D', "debt instruments"),
        (b'T', "commodities"),
        (b'C', "currencies"),
        (b'I', "indices"),
        (b'N', "interest rates"),
        (b'M', "others (miscellaneous)"),
    ],
);
const CLOSED_OPEN: Attribute =
    attr("closed/open-end", &[(b'O', "open-end"), (b'C', "closed-end"), (b'M', "others (miscellaneous)")]);
const DISTRIBUTION_POLICY: Attribute = attr(
    "distribution policy",
    &[(b'I', "income funds"), (b'G', "accumulation funds"), (b'J', "mixed funds")],
);
const FUND_ASSETS: Attribute = attr(
    "assets",
    &[
        (b'R', "real estate"),
        (b'B', "debt instruments"),
        (b'E', "equities"),
        (b'V', "convertible securities"),
        (b'L', "mixed"),
        (b'C', "commodities"),
        (b'D', "derivatives"),
        (b'F', "referential instruments excluding commodities"),
        (b'K', "credits"),
        (b'M', "others (miscellaneous)"),
    ],
);
const SECURITY_TYPE: Attribute = attr(
    "security type and investor restrictions",
    &[
        (b'S', "shares"),
        (b'Q', "shares for qualified investors"),
        (b'U', "units"),
        (b'Y', "units for qualified investors"),
    ],
);
/// ETFs and pension funds: shares or units, without the qualified-investor letters.
const SECURITY_TYPE_PLAIN: Attribute =
    attr("security type and investor restrictions", &[(b'S', "shares"), (b'U', "units")]);
const RIGHT_ASSETS: Attribute = attr(
    "assets",
    &[
        (b'S', "common/ordinary shares"),
        (b'P', "preferred/preference shares"),
        (b'C', "common/ordinary convertible shares"),
        (b'F', "preferred/preference convertible shares"),
        (b'B', "bonds"),
        (b'I', "combined instruments"),
        (b'M', "others (miscellaneous)"),
    ],
);
const UNDERLYING_WARRANT: Attribute = attr(
    "underlying assets",
    &[
        (b'B', "baskets"),
        (b'S', "equities"),
        (b'D', "debt instruments/interest rates"),
        (b'T', "commodities"),
        (b'C', "currencies"),
        (b'I', "indices"),
        (b'M', "others (miscellaneous)"),
    ],
);
const EXERCISE: Attribute = attr(
    "exercise option style",
    &[(b'E', "European"), (b'A', "American"), (b'B', "Bermudan"), (b'M', "others (miscellaneous)")],
);
const UNDERLYING_LISTED_OPTION: Attribute = attr(
    "underlying assets",
    &[
        (b'B', "baskets"),
        (b'S', "stock-equities"),
        (b'D', "debt instruments"),
        (b'T', "commodities"),
        (b'C', "currencies"),
        (b'I', "indices"),
        (b'O', "options"),
        (b'F', "futures"),
        (b'W', "swaps"),
        (b'N', "interest rates"),
        (b'M', "others (miscellaneous)"),
    ],
);
const OPTION_DELIVERY: Attribute = attr(
    "delivery",
    &[(b'P', "physical"), (b'C', "cash"), (b'N', "non-deliverable"), (b'E', "elect at exercise")],
);
const STANDARDIZED: Attribute =
    attr("standardized/non-standardized", &[(b'S', "standardized"), (b'N', "non-standardized")]);
const FUTURE_DELIVERY: Attribute =
    attr("delivery", &[(b'P', "physical"), (b'C', "cash"), (b'N', "non-deliverable")]);
const CASH_PHYSICAL: Attribute = attr("delivery", &[(b'C', "cash"), (b'P', "physical")]);
const CASH_PHYSICAL_ELECT: Attribute =
    attr("delivery", &[(b'C', "cash"), (b'P', "physical"), (b'E', "elect at settlement")]);
const COMMODITY: Attribute = attr(
    "underlying assets",
    &[
        (b'E', "extraction resources"),
        (b'A', "agriculture"),
        (b'I', "industrial products"),
        (b'S', "services"),
        (b'N', "environmental"),
        (b'P', "polypropylene products"),
        (b'H', "generated resources"),
        (b'M', "others (miscellaneous)"),
    ],
);
const OPTION_STYLE: Attribute = attr(
    "option style and type",
    &[
        (b'A', "European call"),
        (b'B', "American call"),
        (b'C', "Bermudan call"),
        (b'D', "European put"),
        (b'E', "American put"),
        (b'F', "Bermudan put"),
        (b'G', "European chooser"),
        (b'H', "American chooser"),
        (b'I', "Bermudan chooser"),
    ],
);
const VALUATION: Attribute = attr(
    "valuation method or trigger",
    &[
        (b'V', "vanilla"),
        (b'A', "Asian"),
        (b'D', "digital (binary)"),
        (b'B', "barrier"),
        (b'G', "digital barrier"),
        (b'L', "lookback"),
        (b'P', "other path dependent"),
        (b'M', "others (miscellaneous)"),
    ],
);
const FORWARD_TRIGGER: Attribute = attr(
    "return or payout trigger",
    &[
        (b'C', "contract for difference (CFD)"),
        (b'S', "spread-bet"),
        (b'F', "forward price of underlying instrument"),
    ],
);
const TERMINATION: Attribute = attr("termination", &[(b'N', "overnight"), (b'O', "open"), (b'T', "term")]);
const NOTHING_BUT_X: [Attribute; 4] = [NA, NA, NA, NA];

const fn group(code: u8, name: &'static str, attributes: [Attribute; 4]) -> Group {
    Group { code, name, attributes }
}

const EQUITIES: &[Group] = &[
    group(b'S', "common/ordinary shares", [VOTING, RESTRICTIONS, PAYMENT, FORM]),
    group(b'P', "preferred/preference shares", [VOTING, REDEMPTION_PREF, INCOME_PREF, FORM]),
    group(b'C', "common/ordinary convertible shares", [VOTING, RESTRICTIONS, PAYMENT, FORM]),
    group(b'F', "preferred/preference convertible shares", [VOTING, REDEMPTION_PREF, INCOME_PREF, FORM]),
    group(b'L', "limited partnership units", [VOTING, RESTRICTIONS, PAYMENT, FORM]),
    group(
        b'D',
        "depositary receipts on equities",
        [
            attr(
                "instrument dependency",
                &[
                    (b'S', "common/ordinary shares"),
                    (b'P', "preferred/preference shares"),
                    (b'C', "common/ordinary convertible shares"),
                    (b'F', "preferred/preference convertible shares"),
                    (b'L', "limited partnership units"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "redemption/conversion of the underlying assets",
                &[
                    (b'R', "redeemable"),
                    (b'N', "perpetual"),
                    (b'B', "convertible"),
                    (b'D', "convertible/redeemable"),
                ],
            ),
            INCOME_RECEIPT,
            FORM,
        ],
    ),
    group(
        b'Y',
        "structured instruments (participation)",
        [
            attr(
                "type",
                &[
                    (b'A', "tracker certificate"),
                    (b'B', "outperformance certificate"),
                    (b'C', "bonus certificate"),
                    (b'D', "outperformance bonus certificate"),
                    (b'E', "twin-win certificate"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "distribution",
                &[(b'D', "dividend payments"), (b'Y', "no payments"), (b'M', "others (miscellaneous)")],
            ),
            attr(
                "repayment",
                &[
                    (b'F', "cash repayment"),
                    (b'V', "physical repayment"),
                    (b'E', "elect at settlement"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            UNDERLYING_STRUCTURED,
        ],
    ),
    group(b'M', "others (miscellaneous)", [NA, NA, NA, FORM]),
];

const FUNDS: &[Group] = &[
    group(
        b'I',
        "standard (vanilla) investment funds/mutual funds",
        [CLOSED_OPEN, DISTRIBUTION_POLICY, FUND_ASSETS, SECURITY_TYPE],
    ),
    group(
        b'H',
        "hedge funds",
        [
            attr(
                "investment strategy",
                &[
                    (b'D', "directional"),
                    (b'R', "relative value"),
                    (b'S', "security selection"),
                    (b'E', "event-driven"),
                    (b'A', "arbitrage"),
                    (b'N', "multi-strategy"),
                    (b'L', "asset-based lending"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
    group(
        b'B',
        "real estate investment trusts (REITs)",
        [CLOSED_OPEN, DISTRIBUTION_POLICY, NA, SECURITY_TYPE],
    ),
    group(
        b'E',
        "exchange-traded funds (ETFs)",
        [CLOSED_OPEN, DISTRIBUTION_POLICY, FUND_ASSETS, SECURITY_TYPE_PLAIN],
    ),
    group(
        b'S',
        "pension funds",
        [
            attr("closed/open", &[(b'O', "open"), (b'C', "closed"), (b'M', "others (miscellaneous)")]),
            attr(
                "strategy/style",
                &[
                    (b'B', "balanced/conservative"),
                    (b'G', "growth"),
                    (b'L', "life style"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "type",
                &[
                    (b'R', "defined benefit"),
                    (b'B', "defined contribution"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            SECURITY_TYPE_PLAIN,
        ],
    ),
    group(
        b'F',
        "funds of funds",
        [
            CLOSED_OPEN,
            DISTRIBUTION_POLICY,
            attr(
                "type of funds",
                &[
                    (b'I', "standard (vanilla) investment funds/mutual funds"),
                    (b'H', "hedge funds"),
                    (b'B', "real estate investment trusts (REITs)"),
                    (b'E', "exchange-traded funds (ETFs)"),
                    (b'P', "private equity funds"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            SECURITY_TYPE,
        ],
    ),
    group(b'P', "private equity funds", [CLOSED_OPEN, DISTRIBUTION_POLICY, FUND_ASSETS, SECURITY_TYPE]),
    group(b'M', "others (miscellaneous)", [NA, NA, NA, SECURITY_TYPE]),
];

const DEBT: &[Group] = &[
    group(b'B', "bonds", [INTEREST_BONDS, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(b'C', "convertible bonds", [INTEREST_IN_KIND, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(b'W', "bonds with warrants attached", [INTEREST_IN_KIND, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(b'T', "medium-term notes", [INTEREST_IN_KIND, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(
        b'S',
        "structured instruments (capital protection)",
        [
            attr(
                "type",
                &[
                    (b'A', "capital protection certificate with participation"),
                    (b'B', "capital protection convertible certificate"),
                    (b'C', "barrier capital protection certificate"),
                    (b'D', "capital protection certificate with coupons"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            DISTRIBUTION_STRUCTURED,
            attr(
                "repayment",
                &[
                    (b'F', "fixed cash repayment (only protected capital level)"),
                    (b'V', "variable cash repayment (protected capital level and additional performance)"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            UNDERLYING_DEBT_STRUCTURED,
        ],
    ),
    group(
        b'E',
        "structured instruments (without capital protection)",
        [
            attr(
                "type",
                &[
                    (b'A', "discount certificate"),
                    (b'B', "barrier discount certificate"),
                    (b'C', "reverse convertible"),
                    (b'D', "barrier reverse convertible"),
                    (b'E', "express certificate"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            DISTRIBUTION_STRUCTURED,
            attr(
                "repayment",
                &[
                    (b'R', "repayment in cash"),
                    (b'S', "repayment in assets"),
                    (b'C', "repayment in assets and cash"),
                    (b'T', "repayment in assets or cash"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            UNDERLYING_DEBT_STRUCTURED,
        ],
    ),
    group(b'G', "mortgage-backed securities", [INTEREST, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(b'A', "asset-backed securities", [INTEREST, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(b'N', "municipal bonds", [INTEREST, GUARANTEE, REDEMPTION_DEBT, FORM]),
    group(
        b'D',
        "depositary receipts on debt instruments",
        [
            attr(
                "instrument dependency",
                &[
                    (b'B', "bonds"),
                    (b'C', "convertible bonds"),
                    (b'W', "bonds with warrants attached"),
                    (b'T', "medium-term notes"),
                    (b'Y', "money market instruments"),
                    (b'G', "mortgage-backed securities"),
                    (b'A', "asset-backed securities"),
                    (b'N', "municipal bonds"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            INTEREST_RECEIPT,
            GUARANTEE,
            REDEMPTION_DEBT,
        ],
    ),
    group(b'Y', "money market instruments", [INTEREST_IN_KIND, GUARANTEE, NA, FORM]),
    group(
        b'M',
        "others (miscellaneous)",
        [
            attr("type", &[(b'B', "bank loan"), (b'P', "promissory note"), (b'M', "others (miscellaneous)")]),
            NA,
            NA,
            FORM,
        ],
    ),
];

const ENTITLEMENTS: &[Group] = &[
    group(b'A', "allotment (bonus) rights", [NA, NA, NA, FORM]),
    group(b'S', "subscription rights", [RIGHT_ASSETS, NA, NA, FORM]),
    group(b'P', "purchase rights", [RIGHT_ASSETS, NA, NA, FORM]),
    group(
        b'W',
        "warrants",
        [
            UNDERLYING_WARRANT,
            attr(
                "type",
                &[(b'T', "traditional warrants"), (b'N', "naked warrants"), (b'C', "covered warrants")],
            ),
            attr("call/put", &[(b'C', "call"), (b'P', "put"), (b'B', "call and put")]),
            EXERCISE,
        ],
    ),
    group(
        b'F',
        "mini-future certificates, constant leverage certificates",
        [
            UNDERLYING_WARRANT,
            attr(
                "barrier dependency type",
                &[
                    (b'T', "barrier underlying based"),
                    (b'N', "barrier instrument based"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr("long/short", &[(b'C', "long"), (b'P', "short"), (b'M', "others (miscellaneous)")]),
            EXERCISE,
        ],
    ),
    group(
        b'D',
        "depositary receipts on entitlements",
        [
            attr(
                "instrument dependency",
                &[
                    (b'A', "allotment (bonus) rights"),
                    (b'S', "subscription rights"),
                    (b'P', "purchase rights"),
                    (b'W', "warrants"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            FORM,
        ],
    ),
    group(b'M', "others (miscellaneous)", NOTHING_BUT_X),
];

const LISTED_OPTION: [Attribute; 4] = [
    attr("exercise option style", &[(b'E', "European"), (b'A', "American"), (b'B', "Bermudan")]),
    UNDERLYING_LISTED_OPTION,
    OPTION_DELIVERY,
    STANDARDIZED,
];

const LISTED_OPTIONS: &[Group] = &[
    group(b'C', "call options", LISTED_OPTION),
    group(b'P', "put options", LISTED_OPTION),
    group(b'M', "others (miscellaneous)", NOTHING_BUT_X),
];

const FUTURES: &[Group] = &[
    group(
        b'F',
        "financial futures",
        [
            attr(
                "underlying assets",
                &[
                    (b'B', "baskets"),
                    (b'S', "stock-equities"),
                    (b'D', "debt instruments"),
                    (b'C', "currencies"),
                    (b'I', "indices"),
                    (b'O', "options"),
                    (b'F', "futures"),
                    (b'W', "swaps"),
                    (b'N', "interest rates"),
                    (b'V', "stock dividends"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            FUTURE_DELIVERY,
            STANDARDIZED,
            NA,
        ],
    ),
    group(b'C', "commodities futures", [COMMODITY, FUTURE_DELIVERY, STANDARDIZED, NA]),
];

const SWAPS: &[Group] = &[
    group(
        b'R',
        "rates",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "basis swap (float-float)"),
                    (b'C', "fixed-floating"),
                    (b'D', "fixed-fixed"),
                    (b'G', "inflation swap"),
                    (b'H', "overnight index swap (OIS)"),
                    (b'Z', "zero coupon"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "notional",
                &[(b'C', "constant"), (b'I', "accreting"), (b'D', "amortizing"), (b'Y', "custom")],
            ),
            attr("single or multi-currency", &[(b'S', "single currency"), (b'C', "cross-currency")]),
            attr("delivery", &[(b'D', "deliverable"), (b'N', "non-deliverable")]),
        ],
    ),
    group(
        b'T',
        "commodities",
        [
            attr(
                "underlying assets",
                &[
                    (b'J', "energy"),
                    (b'K', "metals"),
                    (b'A', "agriculture"),
                    (b'N', "environmental"),
                    (b'G', "freight"),
                    (b'P', "polypropylene products"),
                    (b'S', "fertilizer"),
                    (b'T', "paper"),
                    (b'I', "index (single commodity)"),
                    (b'H', "index (multi-commodity)"),
                    (b'B', "basket (single commodity)"),
                    (b'C', "basket (multi-commodity)"),
                    (b'Q', "multi-commodity"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "return or payout trigger",
                &[(b'C', "contract for difference (CFD)"), (b'T', "total return")],
            ),
            NA,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'E',
        "equity",
        [
            attr(
                "underlying assets",
                &[
                    (b'S', "single stock"),
                    (b'I', "index"),
                    (b'B', "basket"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "return or payout trigger",
                &[
                    (b'P', "price"),
                    (b'D', "dividend"),
                    (b'V', "variance"),
                    (b'L', "volatility"),
                    (b'T', "total return"),
                    (b'C', "contract for difference (CFD)"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'C',
        "credit",
        [
            attr(
                "underlying assets",
                &[
                    (b'U', "single name"),
                    (b'V', "index tranche"),
                    (b'I', "index"),
                    (b'B', "basket"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "return or payout trigger",
                &[(b'C', "credit default"), (b'T', "total return"), (b'M', "others (miscellaneous)")],
            ),
            attr("underlying issuer type", &[(b'C', "corporate"), (b'S', "sovereign"), (b'L', "local")]),
            attr("delivery", &[(b'C', "cash"), (b'P', "physical"), (b'A', "auction")]),
        ],
    ),
    group(
        b'F',
        "foreign exchange",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "spot-forward swap"),
                    (b'C', "forward-forward swap"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            attr("delivery", &[(b'P', "physical"), (b'C', "cash")]),
        ],
    ),
    group(
        b'M',
        "others (miscellaneous)",
        [
            attr("underlying assets", &[(b'P', "commercial property"), (b'M', "others (miscellaneous)")]),
            NA,
            NA,
            CASH_PHYSICAL_ELECT,
        ],
    ),
];

const UNLISTED_OPTIONS: &[Group] = &[
    group(
        b'R',
        "rates",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "basis swap (float-float)"),
                    (b'C', "fixed-floating swap"),
                    (b'D', "fixed-fixed swap"),
                    (b'E', "interest rate index"),
                    (b'G', "inflation rate index"),
                    (b'H', "overnight index swap (OIS)"),
                    (b'O', "options"),
                    (b'R', "forwards"),
                    (b'F', "futures"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            OPTION_STYLE,
            attr(
                "valuation method or trigger",
                &[
                    (b'V', "vanilla"),
                    (b'A', "Asian"),
                    (b'D', "digital (binary)"),
                    (b'B', "barrier"),
                    (b'G', "digital barrier"),
                    (b'L', "lookback"),
                    (b'P', "other path dependent"),
                    (b'C', "cap"),
                    (b'F', "floor"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'T',
        "commodities",
        [
            attr(
                "underlying assets",
                &[
                    (b'J', "energy"),
                    (b'K', "metals"),
                    (b'A', "agriculture"),
                    (b'N', "environmental"),
                    (b'G', "freight"),
                    (b'P', "polypropylene products"),
                    (b'S', "fertilizer"),
                    (b'T', "paper"),
                    (b'I', "index (single commodity)"),
                    (b'H', "index (multi-commodity)"),
                    (b'B', "basket (single commodity)"),
                    (b'C', "basket (multi-commodity)"),
                    (b'O', "options"),
                    (b'R', "forwards"),
                    (b'F', "futures"),
                    (b'W', "swaps"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            OPTION_STYLE,
            VALUATION,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'E',
        "equity",
        [
            attr(
                "underlying assets",
                &[
                    (b'S', "single stock"),
                    (b'I', "index"),
                    (b'B', "basket"),
                    (b'O', "options"),
                    (b'R', "forwards"),
                    (b'F', "futures"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            OPTION_STYLE,
            VALUATION,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'C',
        "credit",
        [
            attr(
                "underlying assets",
                &[
                    (b'U', "CDS on a single name"),
                    (b'V', "CDS on an index tranche"),
                    (b'I', "CDS on an index"),
                    (b'W', "swaps"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            OPTION_STYLE,
            VALUATION,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'F',
        "foreign exchange",
        [
            attr(
                "underlying assets",
                &[
                    (b'R', "forwards (single currency pair)"),
                    (b'F', "futures (single currency pair)"),
                    (b'T', "spot (single currency pair)"),
                    (b'V', "volatility (single currency pair)"),
                    (b'B', "forwards (currency index)"),
                    (b'C', "futures (currency index)"),
                    (b'D', "spot (currency index)"),
                    (b'E', "volatility (currency index)"),
                    (b'Q', "forwards (custom basket of currencies)"),
                    (b'U', "futures (custom basket of currencies)"),
                    (b'W', "spot (custom basket of currencies)"),
                    (b'Y', "volatility (custom basket of currencies)"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr("option style", &[(b'J', "European"), (b'K', "American"), (b'L', "Bermudan")]),
            VALUATION,
            CASH_PHYSICAL_ELECT,
        ],
    ),
    group(
        b'M',
        "others (miscellaneous)",
        [
            attr("underlying assets", &[(b'P', "commercial property"), (b'M', "others (miscellaneous)")]),
            attr(
                "option style and type",
                &[
                    (b'A', "European call"),
                    (b'B', "American call"),
                    (b'C', "Bermudan call"),
                    (b'D', "European put"),
                    (b'E', "American put"),
                    (b'F', "Bermudan put"),
                    (b'G', "European chooser"),
                    (b'H', "American chooser"),
                    (b'I', "Bermudan chooser"),
                    (b'J', "European"),
                    (b'K', "American"),
                    (b'L', "Bermudan"),
                ],
            ),
            VALUATION,
            attr(
                "delivery",
                &[
                    (b'C', "cash"),
                    (b'P', "physical"),
                    (b'E', "elect at exercise"),
                    (b'N', "non-deliverable"),
                    (b'A', "auction"),
                ],
            ),
        ],
    ),
];

const SPOTS: &[Group] = &[
    group(b'F', "foreign exchange", [NA, NA, NA, attr("delivery", &[(b'P', "physical")])]),
    group(
        b'T',
        "commodities",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "agriculture"),
                    (b'J', "energy"),
                    (b'K', "metals"),
                    (b'N', "environmental"),
                    (b'P', "polypropylene products"),
                    (b'S', "fertilizer"),
                    (b'T', "paper"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
];

const FORWARDS: &[Group] = &[
    group(
        b'E',
        "equity",
        [
            attr(
                "underlying assets",
                &[
                    (b'S', "single stock"),
                    (b'I', "index"),
                    (b'B', "basket"),
                    (b'O', "options"),
                    (b'F', "futures"),
                ],
            ),
            NA,
            FORWARD_TRIGGER,
            CASH_PHYSICAL,
        ],
    ),
    group(
        b'F',
        "foreign exchange",
        [
            attr(
                "underlying assets",
                &[
                    (b'T', "spot (single currency pair)"),
                    (b'U', "spot (currency index)"),
                    (b'V', "spot (custom basket of currencies)"),
                    (b'R', "forward (single currency pair)"),
                    (b'S', "forward (currency index)"),
                    (b'W', "forward (custom basket of currencies)"),
                    (b'O', "options (single currency pair)"),
                    (b'J', "options (currency index)"),
                    (b'K', "options (custom basket of currencies)"),
                    (b'F', "futures (single currency pair)"),
                    (b'L', "futures (currency index)"),
                    (b'N', "futures (custom basket of currencies)"),
                ],
            ),
            NA,
            attr(
                "return or payout trigger",
                &[
                    (b'C', "contract for difference (CFD)"),
                    (b'S', "spread-bet"),
                    (b'F', "forward price of underlying instrument"),
                    (b'R', "rolling spot"),
                ],
            ),
            CASH_PHYSICAL,
        ],
    ),
    group(
        b'C',
        "credit",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "single name"),
                    (b'I', "index"),
                    (b'B', "basket"),
                    (b'C', "CDS on a single name"),
                    (b'D', "CDS on an index"),
                    (b'G', "CDS on a basket"),
                    (b'O', "options"),
                ],
            ),
            NA,
            FORWARD_TRIGGER,
            CASH_PHYSICAL,
        ],
    ),
    group(
        b'R',
        "rates",
        [
            attr(
                "underlying assets",
                &[(b'I', "interest rate index"), (b'O', "options"), (b'M', "others (miscellaneous)")],
            ),
            NA,
            FORWARD_TRIGGER,
            CASH_PHYSICAL,
        ],
    ),
    group(
        b'T',
        "commodities",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "agriculture"),
                    (b'B', "basket (single commodity)"),
                    (b'C', "basket (multi-commodity)"),
                    (b'G', "freight"),
                    (b'I', "index (single commodity)"),
                    (b'H', "index (multi-commodity)"),
                    (b'J', "energy"),
                    (b'K', "metals"),
                    (b'N', "environmental"),
                    (b'P', "polypropylene products"),
                    (b'S', "fertilizer"),
                    (b'T', "paper"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            FORWARD_TRIGGER,
            CASH_PHYSICAL,
        ],
    ),
];

const STRATEGIES: &[Group] = &[
    group(b'R', "rates", NOTHING_BUT_X),
    group(b'T', "commodities", NOTHING_BUT_X),
    group(b'E', "equity", NOTHING_BUT_X),
    group(b'C', "credit", NOTHING_BUT_X),
    group(b'F', "foreign exchange", NOTHING_BUT_X),
    group(b'Y', "mixed assets", NOTHING_BUT_X),
    group(b'M', "others (miscellaneous)", NOTHING_BUT_X),
];

const FINANCING: &[Group] = &[
    group(
        b'L',
        "loan lease",
        [
            attr(
                "underlying assets",
                &[
                    (b'A', "agriculture"),
                    (b'B', "baskets"),
                    (b'J', "energy"),
                    (b'K', "metals"),
                    (b'N', "environmental"),
                    (b'P', "polypropylene products"),
                    (b'S', "fertilizer"),
                    (b'T', "paper"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            CASH_PHYSICAL,
        ],
    ),
    group(
        b'R',
        "repurchase agreements",
        [
            attr(
                "underlying assets",
                &[
                    (b'G', "general collateral"),
                    (b'S', "specific security collateral"),
                    (b'C', "cash collateral"),
                ],
            ),
            attr("termination", &[(b'F', "flexible"), (b'N', "overnight"), (b'O', "open"), (b'T', "term")]),
            NA,
            attr(
                "delivery",
                &[(b'D', "delivery versus payment"), (b'H', "hold-in-custody"), (b'T', "tri-party")],
            ),
        ],
    ),
    group(
        b'S',
        "securities lending",
        [
            attr(
                "underlying assets",
                &[
                    (b'C', "cash collateral"),
                    (b'G', "government bonds"),
                    (b'P', "corporate bonds"),
                    (b'T', "convertible bonds"),
                    (b'E', "equity"),
                    (b'L', "letter of credit"),
                    (b'D', "certificate of deposit"),
                    (b'W', "warrants"),
                    (b'K', "money market instruments"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            TERMINATION,
            NA,
            attr(
                "delivery",
                &[
                    (b'D', "delivery versus payment"),
                    (b'F', "free of payment"),
                    (b'H', "hold-in-custody"),
                    (b'T', "tri-party"),
                ],
            ),
        ],
    ),
];

const REFERENTIAL: &[Group] = &[
    group(
        b'C',
        "currencies",
        [
            attr(
                "type",
                &[
                    (b'N', "national currency"),
                    (b'L', "legacy currency"),
                    (b'C', "bullion coins"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
    group(b'T', "commodities", [COMMODITY, NA, NA, NA]),
    group(
        b'R',
        "interest rates",
        [
            attr(
                "type of interest rates",
                &[
                    (b'N', "nominal"),
                    (b'V', "variable"),
                    (b'F', "fixed"),
                    (b'R', "real"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "frequency of calculation",
                &[
                    (b'D', "daily"),
                    (b'W', "weekly"),
                    (b'N', "monthly"),
                    (b'Q', "quarterly"),
                    (b'S', "semi-annually"),
                    (b'A', "annually"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
        ],
    ),
    group(
        b'I',
        "indices",
        [
            attr(
                "asset classes",
                &[
                    (b'E', "equities"),
                    (b'D', "debt"),
                    (b'F', "collective investment vehicles"),
                    (b'R', "real estate"),
                    (b'T', "commodities"),
                    (b'C', "currencies"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "weighting types",
                &[
                    (b'P', "price weighted"),
                    (b'C', "capitalization weighted"),
                    (b'E', "equal weighted"),
                    (b'F', "modified market capitalization weighted"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            attr(
                "index return types",
                &[
                    (b'P', "price return"),
                    (b'N', "net total return"),
                    (b'G', "gross total return"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
        ],
    ),
    group(
        b'B',
        "baskets",
        [
            attr(
                "composition",
                &[
                    (b'E', "equities"),
                    (b'D', "debt"),
                    (b'F', "collective investment vehicles"),
                    (b'I', "indices"),
                    (b'T', "commodities"),
                    (b'C', "currencies"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
    group(
        b'D',
        "stock dividends",
        [
            attr(
                "type of equity",
                &[
                    (b'S', "common/ordinary shares"),
                    (b'P', "preferred/preference shares"),
                    (b'C', "common/ordinary convertible shares"),
                    (b'F', "preferred/preference convertible shares"),
                    (b'L', "limited partnership units"),
                    (b'K', "collective investment vehicles"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
    group(b'M', "others (miscellaneous)", NOTHING_BUT_X),
];

const MISCELLANEOUS: &[Group] = &[
    group(
        b'C',
        "combined instruments",
        [
            attr(
                "components",
                &[
                    (b'S', "combination of shares"),
                    (b'B', "combination of bonds"),
                    (b'H', "share(s) and bond(s)"),
                    (b'A', "share(s) and warrant(s)"),
                    (b'W', "warrant(s) and warrant(s)"),
                    (b'U', "fund units and other components"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            RESTRICTIONS,
            NA,
            FORM,
        ],
    ),
    group(
        b'M',
        "other assets (miscellaneous)",
        [
            attr(
                "further grouping",
                &[
                    (b'R', "real estate deeds"),
                    (b'I', "insurance policies"),
                    (b'E', "escrow receipts"),
                    (b'T', "trade finance instruments"),
                    (b'N', "carbon credit"),
                    (b'P', "precious metal receipts"),
                    (b'S', "other OTC derivative products"),
                    (b'M', "others (miscellaneous)"),
                ],
            ),
            NA,
            NA,
            NA,
        ],
    ),
];

/// Every category of ISO 10962:2021, in the standard's order.
pub const CATEGORIES: &[Category] = &[
    Category { code: b'E', name: "Equities", groups: EQUITIES },
    Category { code: b'C', name: "Collective investment vehicles", groups: FUNDS },
    Category { code: b'D', name: "Debt instruments", groups: DEBT },
    Category { code: b'R', name: "Entitlements (rights)", groups: ENTITLEMENTS },
    Category { code: b'O', name: "Listed options", groups: LISTED_OPTIONS },
    Category { code: b'F', name: "Futures", groups: FUTURES },
    Category { code: b'S', name: "Swaps", groups: SWAPS },
    Category { code: b'H', name: "Non-listed and complex listed options", groups: UNLISTED_OPTIONS },
    Category { code: b'I', name: "Spot", groups: SPOTS },
    Category { code: b'J', name: "Forwards", groups: FORWARDS },
    Category { code: b'K', name: "Strategies", groups: STRATEGIES },
    Category { code: b'L', name: "Financing", groups: FINANCING },
    Category { code: b'T', name: "Referential instruments", groups: REFERENTIAL },
    Category { code: b'M', name: "Others (miscellaneous)", groups: MISCELLANEOUS },
];

/// The category with this letter.
pub fn category(code: u8) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.code == code)
}

impl Group {
    /// The group's letter.
    pub fn letter(&self) -> char {
        char::from(self.code)
    }
}

impl Category {
    /// The category's letter.
    pub fn letter(&self) -> char {
        char::from(self.code)
    }

    /// The filter value of one of its groups ("ES").
    pub fn key_of(&self, group: &Group) -> String {
        format!("{}{}", self.letter(), group.letter())
    }

    /// The group with this letter.
    pub fn group(&self, code: u8) -> Option<&'static Group> {
        self.groups.iter().find(|g| g.code == code)
    }
}

/// What one letter of a code means at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// The standard defines it.
    Defined(&'static str),
    /// `X` at an attribute position: not applicable/undefined, as the standard allows.
    NotApplicable,
    /// The standard does not define this letter here.
    Undefined,
}

impl Meaning {
    /// The meaning as shown: the text, "not applicable", or "undefined".
    pub fn text(&self) -> &'static str {
        match self {
            Meaning::Defined(text) => text,
            Meaning::NotApplicable => "not applicable",
            Meaning::Undefined => "undefined",
        }
    }
}

/// One decoded attribute position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedAttribute {
    /// What the position says ("voting right"); empty when the group is unknown.
    pub name: &'static str,
    pub letter: char,
    pub meaning: Meaning,
}

/// A CFI code read position by position. A code that is not six ASCII letters is not a CFI
/// code and is not decoded ([`Cfi::decode`] gives `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cfi {
    pub code: String,
    pub category: Meaning,
    pub group: Meaning,
    pub attributes: [DecodedAttribute; 4],
}

impl Cfi {
    /// Decodes `code` (six upper-case ASCII letters; anything else gives `None`).
    pub fn decode(code: &str) -> Option<Cfi> {
        let bytes: [u8; 6] = code.as_bytes().try_into().ok()?;
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return None;
        }
        let category = category(bytes[0]);
        let group = category.and_then(|c| c.group(bytes[1]));
        let attribute = |i: usize| {
            let letter = bytes[2 + i];
            let position = group.map(|g| g.attributes[i]);
            let meaning = match position {
                _ if letter == b'X' => Meaning::NotApplicable,
                Some(position) => position
                    .values
                    .iter()
                    .find(|(l, _)| *l == letter)
                    .map_or(Meaning::Undefined, |(_, text)| Meaning::Defined(text)),
                None => Meaning::Undefined,
            };
            DecodedAttribute { name: position.map_or("", |p| p.name), letter: char::from(letter), meaning }
        };
        Some(Cfi {
            code: code.to_owned(),
            category: category.map_or(Meaning::Undefined, |c| Meaning::Defined(c.name)),
            group: match (category, group) {
                (_, Some(g)) => Meaning::Defined(g.name),
                _ => Meaning::Undefined,
            },
            attributes: [attribute(0), attribute(1), attribute(2), attribute(3)],
        })
    }

    /// Whether some letter is not defined at its position (the code is flagged).
    pub fn undefined(&self) -> bool {
        self.category == Meaning::Undefined
            || self.group == Meaning::Undefined
            || self.attributes.iter().any(|a| a.meaning == Meaning::Undefined)
    }

    /// "Equities · common/ordinary shares · voting · free · fully paid · registered": the
    /// category, the group and each attribute, undefined letters as "undefined (Q)", `X`
    /// positions left out.
    pub fn label(&self) -> String {
        let undefined = |letter: u8| format!("undefined ({})", char::from(letter));
        let bytes = self.code.as_bytes();
        let mut parts: Vec<String> = Vec::with_capacity(6);
        parts.push(match &self.category {
            Meaning::Defined(text) => (*text).to_owned(),
            _ => undefined(bytes[0]),
        });
        parts.push(match &self.group {
            Meaning::Defined(text) => (*text).to_owned(),
            _ => undefined(bytes[1]),
        });
        for attribute in &self.attributes {
            match &attribute.meaning {
                Meaning::Defined(text) => parts.push((*text).to_owned()),
                Meaning::NotApplicable => {}
                Meaning::Undefined => parts.push(format!("undefined ({})", attribute.letter)),
            }
        }
        parts.join(" · ")
    }
}

impl fmt::Display for Cfi {
    /// "ESVUFR — Equities · …", with " (undefined combination)" after a flagged code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} — {}", self.code, self.label())?;
        if self.undefined() {
            f.write_str(" (undefined combination)")?;
        }
        Ok(())
    }
}

/// A list filter on CFI codes: a category (`E`) or a category and a group (`ES`), both defined
/// by the standard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CfiFilter(String);

/// Why a CFI filter was refused; the message says what to enter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CfiFilterError {
    #[error("Enter a CFI category (one letter, such as E) or category and group (two letters, such as ES).")]
    Shape,
    #[error(
        "{0} is not a CFI category of ISO 10962; categories are E, C, D, R, O, F, S, H, I, J, K, L, T and M."
    )]
    Category(char),
    #[error("{group} is not a group of the CFI category {category} ({name}); its groups are {groups}.")]
    Group { category: char, name: &'static str, group: char, groups: String },
}

impl CfiFilter {
    /// Reads a filter as typed (trimmed, upper-cased).
    pub fn parse(raw: &str) -> Result<CfiFilter, CfiFilterError> {
        let code = raw.trim().to_ascii_uppercase();
        let bytes = code.as_bytes();
        if !(1..=2).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CfiFilterError::Shape);
        }
        let found = category(bytes[0]).ok_or(CfiFilterError::Category(char::from(bytes[0])))?;
        if let Some(&letter) = bytes.get(1)
            && found.group(letter).is_none()
        {
            return Err(CfiFilterError::Group {
                category: char::from(found.code),
                name: found.name,
                group: char::from(letter),
                groups: found
                    .groups
                    .iter()
                    .map(|g| char::from(g.code).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(CfiFilter(code))
    }

    /// `E` or `ES`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `cfi` (a record's code) is in this category or group.
    pub fn matches(&self, cfi: &str) -> bool {
        cfi.starts_with(&self.0)
    }

    /// "Equities" or "Equities · common/ordinary shares".
    pub fn describe(&self) -> String {
        let bytes = self.0.as_bytes();
        let Some(found) = category(bytes[0]) else { return self.0.clone() };
        match bytes.get(1).and_then(|&g| found.group(g)) {
            Some(group) => format!("{} · {}", found.name, group.name),
            None => found.name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decoded(code: &str) -> Cfi {
        Cfi::decode(code).unwrap_or_else(|| panic!("{code} should decode"))
    }

    #[test]
    fn common_shares_read_as_the_standard_says() {
        let cfi = decoded("ESVUFR");
        assert_eq!(
            cfi.to_string(),
            "ESVUFR — Equities · common/ordinary shares · voting · free · fully paid · registered"
        );
        assert!(!cfi.undefined());
        assert_eq!(cfi.attributes[0].name, "voting right");
    }

    #[test]
    fn known_codes_of_other_categories_decode_fully() {
        assert_eq!(
            decoded("DBFTFB").label(),
            "Debt instruments · bonds · fixed rate · government/state guarantee · fixed maturity · bearer"
        );
        assert_eq!(
            decoded("CIOGEU").label(),
            "Collective investment vehicles · standard (vanilla) investment funds/mutual funds · open-end · \
             accumulation funds · equities · units"
        );
        assert_eq!(
            decoded("RWSTCE").label(),
            "Entitlements (rights) · warrants · equities · traditional warrants · call · European"
        );
        assert_eq!(
            decoded("OCASPS").label(),
            "Listed options · call options · American · stock-equities · physical · standardized"
        );
        assert_eq!(decoded("FFICSX").label(), "Futures · financial futures · indices · cash · standardized");
        // The codes of the bundled sample's instruments among them: none is flagged.
        for code in [
            "ESVUFR", "ESNUFR", "DBFTFB", "CEOGMS", "RWSNCA", "CIOGEU", "RWSTCE", "OCASPS", "FFICSX",
            "KRXXXX", "MMRXXX", "TIEPPX",
        ] {
            assert!(!decoded(code).undefined(), "{code}");
        }
    }

    #[test]
    fn x_is_not_applicable_and_is_left_out_of_the_label() {
        let cfi = decoded("RMXXXX");
        assert_eq!(cfi.label(), "Entitlements (rights) · others (miscellaneous)");
        assert!(!cfi.undefined());
        assert_eq!(cfi.attributes[0].meaning, Meaning::NotApplicable);
    }

    #[test]
    fn a_letter_the_standard_does_not_define_is_flagged_not_guessed() {
        // Q is not a voting right.
        let cfi = decoded("ESQUFR");
        assert!(cfi.undefined());
        assert_eq!(cfi.attributes[0].meaning, Meaning::Undefined);
        assert_eq!(
            cfi.to_string(),
            "ESQUFR — Equities · common/ordinary shares · undefined (Q) · free · fully paid · registered \
             (undefined combination)"
        );
        // An undefined group: its attributes cannot be read either.
        let cfi = decoded("EZVUFR");
        assert!(cfi.undefined());
        assert_eq!(cfi.group, Meaning::Undefined);
        assert!(cfi.attributes.iter().all(|a| a.meaning == Meaning::Undefined));
        // An undefined category.
        assert_eq!(decoded("ZZXXXX").category, Meaning::Undefined);
        // A letter defined elsewhere but not at this position (R is a form, not a payment status).
        assert!(decoded("ESVURR").undefined());
    }

    #[test]
    fn groups_and_letters_follow_the_2021_edition() {
        // Preferred and preference shares are one group; the 2001 groups ER and EV are gone.
        assert_eq!(
            decoded("EPVRFR").label(),
            "Equities · preferred/preference shares · voting · redeemable · fixed rate income · registered"
        );
        assert!(decoded("ERVRFR").undefined() && decoded("EVVRFR").undefined());
        // Rate swaps are deliverable or non-deliverable, not cash or physical.
        assert_eq!(decoded("SRCCSD").attributes[3].meaning, Meaning::Defined("deliverable"));
        assert!(decoded("SRCCSC").undefined());
        // Bonds may pay cash (sukuk); convertible bonds may not.
        assert!(!decoded("DBCTFB").undefined());
        assert!(decoded("DCCTFB").undefined());
        // FX options: the underlying by pair, index or basket, and a plain exercise style.
        assert_eq!(
            decoded("HFTJVC").label(),
            "Non-listed and complex listed options · foreign exchange · spot (single currency pair) · \
             European · vanilla · cash"
        );
    }

    #[test]
    fn anything_but_six_upper_case_letters_is_not_decoded() {
        for raw in ["", "ESVUF", "ESVUFRX", "esvufr", "ES1UFR", "ÉSVUFR"] {
            assert_eq!(Cfi::decode(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn every_group_is_unique_within_its_category_and_every_letter_within_its_position() {
        let mut categories: Vec<u8> = CATEGORIES.iter().map(|c| c.code).collect();
        categories.sort_unstable();
        categories.dedup();
        assert_eq!(categories.len(), 14);
        for category in CATEGORIES {
            let mut groups: Vec<u8> = category.groups.iter().map(|g| g.code).collect();
            groups.sort_unstable();
            groups.dedup();
            assert_eq!(groups.len(), category.groups.len(), "{}", category.name);
            for group in category.groups {
                for attribute in &group.attributes {
                    let mut letters: Vec<u8> = attribute.values.iter().map(|(l, _)| *l).collect();
                    letters.sort_unstable();
                    letters.dedup();
                    assert_eq!(letters.len(), attribute.values.len(), "{} {}", category.name, group.name);
                    assert!(!letters.contains(&b'X'), "X is not applicable everywhere");
                }
            }
        }
    }

    #[test]
    fn filters_take_a_defined_category_or_group() {
        assert_eq!(CfiFilter::parse(" es ").map(|f| f.as_str().to_owned()), Ok("ES".to_owned()));
        assert_eq!(CfiFilter::parse("D").map(|f| f.describe()), Ok("Debt instruments".to_owned()));
        assert_eq!(CfiFilter::parse("Z"), Err(CfiFilterError::Category('Z')));
        assert!(matches!(CfiFilter::parse("EZ"), Err(CfiFilterError::Group { group: 'Z', .. })));
        assert_eq!(CfiFilter::parse("ESV"), Err(CfiFilterError::Shape));
        assert_eq!(CfiFilter::parse("E1"), Err(CfiFilterError::Shape));
        let es = CfiFilter::parse("ES").unwrap_or_else(|e| panic!("{e}"));
        assert!(es.matches("ESVUFR") && !es.matches("EPVUFR"));
    }

    proptest! {
        #[test]
        fn decoding_never_panics_on_six_letters(code in "[A-Z]{6}") {
            let cfi = Cfi::decode(&code);
            prop_assert!(cfi.is_some());
            let cfi = cfi.unwrap_or_else(|| unreachable!());
            let shown = cfi.to_string();
            prop_assert!(shown.starts_with(&code));
            prop_assert_eq!(cfi.undefined(), shown.ends_with("(undefined combination)"));
        }

        #[test]
        fn decoding_never_panics_on_any_text(code in "\\PC{0,8}") {
            let _ = Cfi::decode(&code).map(|cfi| cfi.to_string());
        }
    }
}
