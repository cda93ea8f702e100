//! The HPACK static Huffman code (RFC 7541 §5.2, Appendix B): encoding, and a decoder that
//! rejects EOS and bad padding.
//!
//! The code table below is data transcribed from RFC 7541 Appendix B (it is the canonical
//! Huffman code for those lengths; `tests` checks completeness and the canonical property).
//! The decoder walks a 4-bit-at-a-time state machine built from it at compile time, so
//! decoding is linear in the input with no allocation beyond the output.

use alloc::vec::Vec;

use super::HpackError;

/// The end-of-string symbol (RFC 7541 Appendix B, symbol 256); it must never appear in a
/// decoded string (§5.2).
const EOS: usize = 256;

/// `(code, bit length)` for symbols 0..=255 and EOS (256), RFC 7541 Appendix B. The code is
/// right-aligned in the `u32`; comments give the symbol and its bits, MSB first.
#[allow(clippy::unreadable_literal)] // data: the RFC's hex, bits given in the comments
pub const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),     // 0 11111111|11000
    (0x7fffd8, 23),   // 1 11111111|11111111|1011000
    (0xfffffe2, 28),  // 2 11111111|11111111|11111110|0010
    (0xfffffe3, 28),  // 3 11111111|11111111|11111110|0011
    (0xfffffe4, 28),  // 4 11111111|11111111|11111110|0100
    (0xfffffe5, 28),  // 5 11111111|11111111|11111110|0101
    (0xfffffe6, 28),  // 6 11111111|11111111|11111110|0110
    (0xfffffe7, 28),  // 7 11111111|11111111|11111110|0111
    (0xfffffe8, 28),  // 8 11111111|11111111|11111110|1000
    (0xffffea, 24),   // 9 11111111|11111111|11101010
    (0x3ffffffc, 30), // 10 11111111|11111111|11111111|111100
    (0xfffffe9, 28),  // 11 11111111|11111111|11111110|1001
    (0xfffffea, 28),  // 12 11111111|11111111|11111110|1010
    (0x3ffffffd, 30), // 13 11111111|11111111|11111111|111101
    (0xfffffeb, 28),  // 14 11111111|11111111|11111110|1011
    (0xfffffec, 28),  // 15 11111111|11111111|11111110|1100
    (0xfffffed, 28),  // 16 11111111|11111111|11111110|1101
    (0xfffffee, 28),  // 17 11111111|11111111|11111110|1110
    (0xfffffef, 28),  // 18 11111111|11111111|11111110|1111
    (0xffffff0, 28),  // 19 11111111|11111111|11111111|0000
    (0xffffff1, 28),  // 20 11111111|11111111|11111111|0001
    (0xffffff2, 28),  // 21 11111111|11111111|11111111|0010
    (0x3ffffffe, 30), // 22 11111111|11111111|11111111|111110
    (0xffffff3, 28),  // 23 11111111|11111111|11111111|0011
    (0xffffff4, 28),  // 24 11111111|11111111|11111111|0100
    (0xffffff5, 28),  // 25 11111111|11111111|11111111|0101
    (0xffffff6, 28),  // 26 11111111|11111111|11111111|0110
    (0xffffff7, 28),  // 27 11111111|11111111|11111111|0111
    (0xffffff8, 28),  // 28 11111111|11111111|11111111|1000
    (0xffffff9, 28),  // 29 11111111|11111111|11111111|1001
    (0xffffffa, 28),  // 30 11111111|11111111|11111111|1010
    (0xffffffb, 28),  // 31 11111111|11111111|11111111|1011
    (0x14, 6),        // 32 010100
    (0x3f8, 10),      // '!' 11111110|00
    (0x3f9, 10),      // '"' 11111110|01
    (0xffa, 12),      // '#' 11111111|1010
    (0x1ff9, 13),     // '$' 11111111|11001
    (0x15, 6),        // '%' 010101
    (0xf8, 8),        // '&' 11111000
    (0x7fa, 11),      // '\'' 11111111|010
    (0x3fa, 10),      // '(' 11111110|10
    (0x3fb, 10),      // ')' 11111110|11
    (0xf9, 8),        // '*' 11111001
    (0x7fb, 11),      // '+' 11111111|011
    (0xfa, 8),        // ',' 11111010
    (0x16, 6),        // '-' 010110
    (0x17, 6),        // '.' 010111
    (0x18, 6),        // '/' 011000
    (0x0, 5),         // '0' 00000
    (0x1, 5),         // '1' 00001
    (0x2, 5),         // '2' 00010
    (0x19, 6),        // '3' 011001
    (0x1a, 6),        // '4' 011010
    (0x1b, 6),        // '5' 011011
    (0x1c, 6),        // '6' 011100
    (0x1d, 6),        // '7' 011101
    (0x1e, 6),        // '8' 011110
    (0x1f, 6),        // '9' 011111
    (0x5c, 7),        // ':' 1011100
    (0xfb, 8),        // ';' 11111011
    (0x7ffc, 15),     // '<' 11111111|1111100
    (0x20, 6),        // '=' 100000
    (0xffb, 12),      // '>' 11111111|1011
    (0x3fc, 10),      // '?' 11111111|00
    (0x1ffa, 13),     // '@' 11111111|11010
    (0x21, 6),        // 'A' 100001
    (0x5d, 7),        // 'B' 1011101
    (0x5e, 7),        // 'C' 1011110
    (0x5f, 7),        // 'D' 1011111
    (0x60, 7),        // 'E' 1100000
    (0x61, 7),        // 'F' 1100001
    (0x62, 7),        // 'G' 1100010
    (0x63, 7),        // 'H' 1100011
    (0x64, 7),        // 'I' 1100100
    (0x65, 7),        // 'J' 1100101
    (0x66, 7),        // 'K' 1100110
    (0x67, 7),        // 'L' 1100111
    (0x68, 7),        // 'M' 1101000
    (0x69, 7),        // 'N' 1101001
    (0x6a, 7),        // 'O' 1101010
    (0x6b, 7),        // 'P' 1101011
    (0x6c, 7),        // 'Q' 1101100
    (0x6d, 7),        // 'R' 1101101
    (0x6e, 7),        // 'S' 1101110
    (0x6f, 7),        // 'T' 1101111
    (0x70, 7),        // 'U' 1110000
    (0x71, 7),        // 'V' 1110001
    (0x72, 7),        // 'W' 1110010
    (0xfc, 8),        // 'X' 11111100
    (0x73, 7),        // 'Y' 1110011
    (0xfd, 8),        // 'Z' 11111101
    (0x1ffb, 13),     // '[' 11111111|11011
    (0x7fff0, 19),    // '\\' 11111111|11111110|000
    (0x1ffc, 13),     // ']' 11111111|11100
    (0x3ffc, 14),     // '^' 11111111|111100
    (0x22, 6),        // '_' 100010
    (0x7ffd, 15),     // '`' 11111111|1111101
    (0x3, 5),         // 'a' 00011
    (0x23, 6),        // 'b' 100011
    (0x4, 5),         // 'c' 00100
    (0x24, 6),        // 'd' 100100
    (0x5, 5),         // 'e' 00101
    (0x25, 6),        // 'f' 100101
    (0x26, 6),        // 'g' 100110
    (0x27, 6),        // 'h' 100111
    (0x6, 5),         // 'i' 00110
    (0x74, 7),        // 'j' 1110100
    (0x75, 7),        // 'k' 1110101
    (0x28, 6),        // 'l' 101000
    (0x29, 6),        // 'm' 101001
    (0x2a, 6),        // 'n' 101010
    (0x7, 5),         // 'o' 00111
    (0x2b, 6),        // 'p' 101011
    (0x76, 7),        // 'q' 1110110
    (0x2c, 6),        // 'r' 101100
    (0x8, 5),         // 's' 01000
    (0x9, 5),         // 't' 01001
    (0x2d, 6),        // 'u' 101101
    (0x77, 7),        // 'v' 1110111
    (0x78, 7),        // 'w' 1111000
    (0x79, 7),        // 'x' 1111001
    (0x7a, 7),        // 'y' 1111010
    (0x7b, 7),        // 'z' 1111011
    (0x7ffe, 15),     // '{' 11111111|1111110
    (0x7fc, 11),      // '|' 11111111|100
    (0x3ffd, 14),     // '}' 11111111|111101
    (0x1ffd, 13),     // '~' 11111111|11101
    (0xffffffc, 28),  // 127 11111111|11111111|11111111|1100
    (0xfffe6, 20),    // 128 11111111|11111110|0110
    (0x3fffd2, 22),   // 129 11111111|11111111|010010
    (0xfffe7, 20),    // 130 11111111|11111110|0111
    (0xfffe8, 20),    // 131 11111111|11111110|1000
    (0x3fffd3, 22),   // 132 11111111|11111111|010011
    (0x3fffd4, 22),   // 133 11111111|11111111|010100
    (0x3fffd5, 22),   // 134 11111111|11111111|010101
    (0x7fffd9, 23),   // 135 11111111|11111111|1011001
    (0x3fffd6, 22),   // 136 11111111|11111111|010110
    (0x7fffda, 23),   // 137 11111111|11111111|1011010
    (0x7fffdb, 23),   // 138 11111111|11111111|1011011
    (0x7fffdc, 23),   // 139 11111111|11111111|1011100
    (0x7fffdd, 23),   // 140 11111111|11111111|1011101
    (0x7fffde, 23),   // 141 11111111|11111111|1011110
    (0xffffeb, 24),   // 142 11111111|11111111|11101011
    (0x7fffdf, 23),   // 143 11111111|11111111|1011111
    (0xffffec, 24),   // 144 11111111|11111111|11101100
    (0xffffed, 24),   // 145 11111111|11111111|11101101
    (0x3fffd7, 22),   // 146 11111111|11111111|010111
    (0x7fffe0, 23),   // 147 11111111|11111111|1100000
    (0xffffee, 24),   // 148 11111111|11111111|11101110
    (0x7fffe1, 23),   // 149 11111111|11111111|1100001
    (0x7fffe2, 23),   // 150 11111111|11111111|1100010
    (0x7fffe3, 23),   // 151 11111111|11111111|1100011
    (0x7fffe4, 23),   // 152 11111111|11111111|1100100
    (0x1fffdc, 21),   // 153 11111111|11111110|11100
    (0x3fffd8, 22),   // 154 11111111|11111111|011000
    (0x7fffe5, 23),   // 155 11111111|11111111|1100101
    (0x3fffd9, 22),   // 156 11111111|11111111|011001
    (0x7fffe6, 23),   // 157 11111111|11111111|1100110
    (0x7fffe7, 23),   // 158 11111111|11111111|1100111
    (0xffffef, 24),   // 159 11111111|11111111|11101111
    (0x3fffda, 22),   // 160 11111111|11111111|011010
    (0x1fffdd, 21),   // 161 11111111|11111110|11101
    (0xfffe9, 20),    // 162 11111111|11111110|1001
    (0x3fffdb, 22),   // 163 11111111|11111111|011011
    (0x3fffdc, 22),   // 164 11111111|11111111|011100
    (0x7fffe8, 23),   // 165 11111111|11111111|1101000
    (0x7fffe9, 23),   // 166 11111111|11111111|1101001
    (0x1fffde, 21),   // 167 11111111|11111110|11110
    (0x7fffea, 23),   // 168 11111111|11111111|1101010
    (0x3fffdd, 22),   // 169 11111111|11111111|011101
    (0x3fffde, 22),   // 170 11111111|11111111|011110
    (0xfffff0, 24),   // 171 11111111|11111111|11110000
    (0x1fffdf, 21),   // 172 11111111|11111110|11111
    (0x3fffdf, 22),   // 173 11111111|11111111|011111
    (0x7fffeb, 23),   // 174 11111111|11111111|1101011
    (0x7fffec, 23),   // 175 11111111|11111111|1101100
    (0x1fffe0, 21),   // 176 11111111|11111111|00000
    (0x1fffe1, 21),   // 177 11111111|11111111|00001
    (0x3fffe0, 22),   // 178 11111111|11111111|100000
    (0x1fffe2, 21),   // 179 11111111|11111111|00010
    (0x7fffed, 23),   // 180 11111111|11111111|1101101
    (0x3fffe1, 22),   // 181 11111111|11111111|100001
    (0x7fffee, 23),   // 182 11111111|11111111|1101110
    (0x7fffef, 23),   // 183 11111111|11111111|1101111
    (0xfffea, 20),    // 184 11111111|11111110|1010
    (0x3fffe2, 22),   // 185 11111111|11111111|100010
    (0x3fffe3, 22),   // 186 11111111|11111111|100011
    (0x3fffe4, 22),   // 187 11111111|11111111|100100
    (0x7ffff0, 23),   // 188 11111111|11111111|1110000
    (0x3fffe5, 22),   // 189 11111111|11111111|100101
    (0x3fffe6, 22),   // 190 11111111|11111111|100110
    (0x7ffff1, 23),   // 191 11111111|11111111|1110001
    (0x3ffffe0, 26),  // 192 11111111|11111111|11111000|00
    (0x3ffffe1, 26),  // 193 11111111|11111111|11111000|01
    (0xfffeb, 20),    // 194 11111111|11111110|1011
    (0x7fff1, 19),    // 195 11111111|11111110|001
    (0x3fffe7, 22),   // 196 11111111|11111111|100111
    (0x7ffff2, 23),   // 197 11111111|11111111|1110010
    (0x3fffe8, 22),   // 198 11111111|11111111|101000
    (0x1ffffec, 25),  // 199 11111111|11111111|11110110|0
    (0x3ffffe2, 26),  // 200 11111111|11111111|11111000|10
    (0x3ffffe3, 26),  // 201 11111111|11111111|11111000|11
    (0x3ffffe4, 26),  // 202 11111111|11111111|11111001|00
    (0x7ffffde, 27),  // 203 11111111|11111111|11111011|110
    (0x7ffffdf, 27),  // 204 11111111|11111111|11111011|111
    (0x3ffffe5, 26),  // 205 11111111|11111111|11111001|01
    (0xfffff1, 24),   // 206 11111111|11111111|11110001
    (0x1ffffed, 25),  // 207 11111111|11111111|11110110|1
    (0x7fff2, 19),    // 208 11111111|11111110|010
    (0x1fffe3, 21),   // 209 11111111|11111111|00011
    (0x3ffffe6, 26),  // 210 11111111|11111111|11111001|10
    (0x7ffffe0, 27),  // 211 11111111|11111111|11111100|000
    (0x7ffffe1, 27),  // 212 11111111|11111111|11111100|001
    (0x3ffffe7, 26),  // 213 11111111|11111111|11111001|11
    (0x7ffffe2, 27),  // 214 11111111|11111111|11111100|010
    (0xfffff2, 24),   // 215 11111111|11111111|11110010
    (0x1fffe4, 21),   // 216 11111111|11111111|00100
    (0x1fffe5, 21),   // 217 11111111|11111111|00101
    (0x3ffffe8, 26),  // 218 11111111|11111111|11111010|00
    (0x3ffffe9, 26),  // 219 11111111|11111111|11111010|01
    (0xffffffd, 28),  // 220 11111111|11111111|11111111|1101
    (0x7ffffe3, 27),  // 221 11111111|11111111|11111100|011
    (0x7ffffe4, 27),  // 222 11111111|11111111|11111100|100
    (0x7ffffe5, 27),  // 223 11111111|11111111|11111100|101
    (0xfffec, 20),    // 224 11111111|11111110|1100
    (0xfffff3, 24),   // 225 11111111|11111111|11110011
    (0xfffed, 20),    // 226 11111111|11111110|1101
    (0x1fffe6, 21),   // 227 11111111|11111111|00110
    (0x3fffe9, 22),   // 228 11111111|11111111|101001
    (0x1fffe7, 21),   // 229 11111111|11111111|00111
    (0x1fffe8, 21),   // 230 11111111|11111111|01000
    (0x7ffff3, 23),   // 231 11111111|11111111|1110011
    (0x3fffea, 22),   // 232 11111111|11111111|101010
    (0x3fffeb, 22),   // 233 11111111|11111111|101011
    (0x1ffffee, 25),  // 234 11111111|11111111|11110111|0
    (0x1ffffef, 25),  // 235 11111111|11111111|11110111|1
    (0xfffff4, 24),   // 236 11111111|11111111|11110100
    (0xfffff5, 24),   // 237 11111111|11111111|11110101
    (0x3ffffea, 26),  // 238 11111111|11111111|11111010|10
    (0x7ffff4, 23),   // 239 11111111|11111111|1110100
    (0x3ffffeb, 26),  // 240 11111111|11111111|11111010|11
    (0x7ffffe6, 27),  // 241 11111111|11111111|11111100|110
    (0x3ffffec, 26),  // 242 11111111|11111111|11111011|00
    (0x3ffffed, 26),  // 243 11111111|11111111|11111011|01
    (0x7ffffe7, 27),  // 244 11111111|11111111|11111100|111
    (0x7ffffe8, 27),  // 245 11111111|11111111|11111101|000
    (0x7ffffe9, 27),  // 246 11111111|11111111|11111101|001
    (0x7ffffea, 27),  // 247 11111111|11111111|11111101|010
    (0x7ffffeb, 27),  // 248 11111111|11111111|11111101|011
    (0xffffffe, 28),  // 249 11111111|11111111|11111111|1110
    (0x7ffffec, 27),  // 250 11111111|11111111|11111101|100
    (0x7ffffed, 27),  // 251 11111111|11111111|11111101|101
    (0x7ffffee, 27),  // 252 11111111|11111111|11111101|110
    (0x7ffffef, 27),  // 253 11111111|11111111|11111101|111
    (0x7fffff0, 27),  // 254 11111111|11111111|11111110|000
    (0x3ffffee, 26),  // 255 11111111|11111111|11111011|10
    (0x3fffffff, 30), // EOS 11111111|11111111|11111111|111111
];

/// A child reference in the decoding tree: an internal node index, or `LEAF | symbol`.
const LEAF: u16 = 0x8000;

/// The binary decoding tree of [`CODES`]: 256 internal nodes (a complete prefix code over
/// 257 symbols), root at 0; `TREE[node][bit]` is a node index or `LEAF | symbol`.
const TREE: [[u16; 2]; 256] = build_tree();

const fn build_tree() -> [[u16; 2]; 256] {
    // 0 means "unset": the root is never anyone's child, so 0 is free as a marker.
    let mut nodes = [[0u16; 2]; 256];
    let mut next: u16 = 1;
    let mut sym = 0;
    while sym < CODES.len() {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut bit = len;
        while bit > 1 {
            bit -= 1;
            let b = ((code >> bit) & 1) as usize;
            if nodes[node][b] == 0 {
                assert!(
                    next < 256,
                    "Huffman code is not a prefix code of 257 symbols"
                );
                nodes[node][b] = next;
                next += 1;
            }
            assert!(
                nodes[node][b] & LEAF == 0,
                "Huffman code is not prefix-free"
            );
            node = nodes[node][b] as usize;
        }
        let b = (code & 1) as usize;
        assert!(nodes[node][b] == 0, "Huffman code is not prefix-free");
        nodes[node][b] = LEAF | sym as u16;
        sym += 1;
    }
    // Completeness: every internal node has both children (Kraft sum is exactly 1).
    let mut n = 0;
    while n < 256 {
        assert!(
            nodes[n][0] != 0 && nodes[n][1] != 0,
            "Huffman code is incomplete"
        );
        n += 1;
    }
    nodes
}

/// One step of the 4-bit decoder: from a state (an internal tree node), consume a nibble.
#[derive(Clone, Copy)]
struct Step {
    /// The internal node reached after the nibble (0 = root, right after a symbol).
    next: u8,
    /// The symbol completed inside this nibble (at most one: the shortest code is 5 bits).
    sym: u8,
    /// `EMIT`, `FAIL`, `ACCEPT` bits.
    flags: u8,
}

/// `Step::sym` is valid.
const EMIT: u8 = 1;
/// The nibble completed EOS: a decoding error (§5.2).
const FAIL: u8 = 2;
/// Ending the string in `next` is valid: the bits since the last symbol are fewer than 8 and
/// all ones, i.e. a correct padding (§5.2).
const ACCEPT: u8 = 4;

/// `STEPS[state * 16 + nibble]`.
const STEPS: [Step; 256 * 16] = build_steps();

const fn build_steps() -> [Step; 256 * 16] {
    // The nodes reached from the root by 0..=7 one-bits: valid places to stop (padding).
    let mut accepting = [false; 256];
    let mut node = 0usize;
    let mut depth = 0;
    while depth <= 7 {
        accepting[node] = true;
        let child = TREE[node][1];
        assert!(
            child & LEAF == 0,
            "a short all-ones code would break padding"
        );
        node = child as usize;
        depth += 1;
    }
    let mut steps = [Step {
        next: 0,
        sym: 0,
        flags: 0,
    }; 256 * 16];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut sym = 0u8;
            let mut flags = 0u8;
            let mut i = 4;
            while i > 0 {
                i -= 1;
                let child = TREE[node][(nibble >> i) & 1];
                if child & LEAF != 0 {
                    let s = (child & !LEAF) as usize;
                    if s == EOS {
                        flags |= FAIL;
                        break;
                    }
                    sym = s as u8;
                    flags |= EMIT;
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            if flags & FAIL == 0 && accepting[node] {
                flags |= ACCEPT;
            }
            steps[state * 16 + nibble] = Step {
                next: node as u8,
                sym,
                flags,
            };
            nibble += 1;
        }
        state += 1;
    }
    steps
}

/// Appends the Huffman decoding of `input` to `out`.
///
/// Errors with [`HpackError::InvalidHuffman`] if the input contains EOS, or ends with padding
/// longer than 7 bits or not made of one-bits (RFC 7541 §5.2). Appends at most
/// `input.len() * 8 / 5` bytes (every code is at least 5 bits); time is linear in the input.
/// On error `out` may hold a partial result.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    out.reserve(input.len() * 8 / 5);
    let mut state = 0u8;
    let mut accept = true;
    for &byte in input {
        for nibble in [byte >> 4, byte & 0x0f] {
            let index = usize::from(state) * 16 + usize::from(nibble);
            let step = STEPS
                .get(index)
                .copied()
                .ok_or(HpackError::InvalidHuffman)?;
            if step.flags & FAIL != 0 {
                // §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be
                // treated as a decoding error."
                return Err(HpackError::InvalidHuffman);
            }
            if step.flags & EMIT != 0 {
                out.push(step.sym);
            }
            state = step.next;
            accept = step.flags & ACCEPT != 0;
        }
    }
    // §5.2: padding longer than 7 bits, or not the most significant bits of EOS (all ones),
    // MUST be treated as a decoding error.
    if accept {
        Ok(())
    } else {
        Err(HpackError::InvalidHuffman)
    }
}

/// The length in bytes of the Huffman encoding of `input` (padding included).
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman encoding of `input` to `out`, padded with the most significant bits of
/// EOS (one-bits) to a whole byte (RFC 7541 §5.2).
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(input));
    // Invariant: `pending` holds `bits` < 8 not yet written bits, right-aligned.
    let mut pending: u64 = 0;
    let mut bits: u32 = 0;
    for &b in input {
        let (code, len) = CODES[usize::from(b)];
        pending = (pending << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((pending >> bits) as u8);
        }
        pending &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(((pending << (8 - bits)) as u8) | (0xffu8 >> bits));
    }
}
