//! A small page-layout engine over pdf-writer: blocks of text wrapped to the page width, split
//! across pages, each block tagged as a structure element.

use pdf_writer::types::{StructRole, TabOrder};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The document's title (H1).
    Title,
    /// A section heading (H2).
    Heading,
    Body,
    /// Fixed-width text, for hashes and codes.
    Mono,
    /// Small print.
    Small,
}

impl Style {
    fn font(self) -> (&'static [u8], f32) {
        match self {
            Style::Title => (b"F2", 16.0),
            Style::Heading => (b"F2", 12.0),
            Style::Body => (b"F1", 10.5),
            Style::Mono => (b"F3", 8.5),
            Style::Small => (b"F1", 8.5),
        }
    }

    fn role(self) -> StructRole {
        match self {
            Style::Title => StructRole::H1,
            Style::Heading => StructRole::H2,
            _ => StructRole::P,
        }
    }

    /// The marked-content tag matching the role.
    fn tag(self) -> &'static [u8] {
        match self {
            Style::Title => b"H1",
            Style::Heading => b"H2",
            _ => b"P",
        }
    }

    fn space_before(self) -> f32 {
        match self {
            Style::Title => 0.0,
            Style::Heading => 14.0,
            _ => 4.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Block {
    pub style: Style,
    pub text: String,
}

/// A document under construction.
#[derive(Debug, Clone)]
pub struct PdfDocument {
    title: String,
    header: String,
    blocks: Vec<Block>,
}

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const BODY_TOP: f32 = PAGE_HEIGHT - 96.0;

/// Approximate advance widths (in em) of the standard Helvetica faces; good enough to wrap text.
fn char_width(c: char, mono: bool) -> f32 {
    if mono {
        return 0.6;
    }
    match c {
        'i' | 'l' | 'j' | '\'' | '.' | ',' | ':' | ';' | '!' | '|' | 'í' | 'ì' | 'î' | 'ï' => {
            0.24
        }
        ' ' => 0.278,
        'f' | 't' | 'r' | 'I' | '(' | ')' | '-' | '/' => 0.33,
        'm' | 'w' | 'M' | 'W' | 'œ' | 'Œ' | 'æ' => 0.85,
        '0'..='9' => 0.556,
        c if c.is_uppercase() => 0.70,
        c if c.is_lowercase() => 0.54,
        _ => 0.6,
    }
}

fn text_width(text: &str, size: f32, mono: bool) -> f32 {
    text.chars().map(|c| char_width(c, mono)).sum::<f32>() * size
}

/// Breaks `text` into lines no wider than `width`, keeping explicit line breaks.
fn wrap(text: &str, size: f32, mono: bool, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if text_width(&candidate, size, mono) <= width || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::take(&mut line));
                line = word.to_string();
            }
            // A single word longer than the line (a hash, a URL) is cut.
            while text_width(&line, size, mono) > width {
                let mut cut = line.len();
                while cut > 0 && text_width(&line[..cut], size, mono) > width {
                    cut = line[..cut]
                        .char_indices()
                        .last()
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                }
                if cut == 0 {
                    break;
                }
                lines.push(line[..cut].to_string());
                line = line[cut..].to_string();
            }
        }
        lines.push(line);
    }
    lines
}

/// Text in the WinAnsi encoding of the standard fonts; characters it lacks become '?'.
fn win_ansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buffer = [0u8; 4];
    for c in text.chars() {
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut buffer));
        if unmappable || bytes.len() != 1 {
            out.push(b'?');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

struct PlacedLine {
    block: usize,
    page: usize,
    mcid: i32,
    y: f32,
    text: String,
}

impl PdfDocument {
    /// `header` is printed at the top of every page (e.g. "République française — Info Parquet").
    pub fn new(title: impl Into<String>, header: impl Into<String>) -> PdfDocument {
        PdfDocument {
            title: title.into(),
            header: header.into(),
            blocks: Vec::new(),
        }
    }

    pub fn push(&mut self, style: Style, text: impl Into<String>) -> &mut Self {
        self.blocks.push(Block {
            style,
            text: text.into(),
        });
        self
    }

    fn layout(&self) -> (Vec<PlacedLine>, usize) {
        let width = PAGE_WIDTH - 2.0 * MARGIN;
        let mut placed = Vec::new();
        let mut page = 0;
        let mut y = BODY_TOP;
        let mut next_mcid = vec![0i32];
        for (index, block) in self.blocks.iter().enumerate() {
            let (_, size) = block.style.font();
            let leading = size * 1.35;
            y -= block.style.space_before();
            for text in wrap(&block.text, size, block.style == Style::Mono, width) {
                if y - leading < MARGIN {
                    page += 1;
                    next_mcid.push(0);
                    y = BODY_TOP;
                }
                y -= leading;
                let mcid = next_mcid[page];
                next_mcid[page] += 1;
                placed.push(PlacedLine {
                    block: index,
                    page,
                    mcid,
                    y,
                    text,
                });
            }
        }
        (placed, page + 1)
    }

    /// Renders the PDF.
    pub fn render(&self) -> Vec<u8> {
        let (lines, page_count) = self.layout();
        let mut next = 1;
        let mut alloc = || {
            let id = Ref::new(next);
            next += 1;
            id
        };
        let catalog_id = alloc();
        let pages_id = alloc();
        let info_id = alloc();
        let tree_id = alloc();
        let document_element_id = alloc();
        let fonts = [alloc(), alloc(), alloc()];
        let page_ids: Vec<Ref> = (0..page_count).map(|_| alloc()).collect();
        let content_ids: Vec<Ref> = (0..page_count).map(|_| alloc()).collect();
        let parent_arrays: Vec<Ref> = (0..page_count).map(|_| alloc()).collect();
        let element_ids: Vec<Ref> = self.blocks.iter().map(|_| alloc()).collect();

        let mut pdf = Pdf::new();
        {
            let mut catalog = pdf.catalog(catalog_id);
            catalog.pages(pages_id);
            catalog.lang(TextStr("fr-FR"));
            catalog.mark_info().marked(true);
            catalog.viewer_preferences().display_doc_title(true);
            catalog.pair(Name(b"StructTreeRoot"), tree_id);
        }
        pdf.document_info(info_id)
            .title(TextStr(&self.title))
            .producer(TextStr("Info Parquet"));
        pdf.pages(pages_id)
            .kids(page_ids.iter().copied())
            .count(page_count as i32);
        for (font_id, base) in fonts
            .iter()
            .zip([&b"Helvetica"[..], b"Helvetica-Bold", b"Courier"])
        {
            pdf.type1_font(*font_id)
                .base_font(Name(base))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }

        {
            let mut tree = pdf
                .indirect(tree_id)
                .start::<pdf_writer::writers::StructTreeRoot>();
            tree.child(document_element_id);
            let mut parent_tree = tree.parent_tree();
            let mut nums = parent_tree.nums();
            for (page, array) in parent_arrays.iter().enumerate() {
                nums.insert(page as i32, *array);
            }
            nums.finish();
            parent_tree.finish();
            tree.parent_tree_next_key(page_count as i32);
        }
        {
            let mut document = pdf.struct_element(document_element_id);
            document.kind(StructRole::Document).parent(tree_id);
            document.children().items(element_ids.iter().copied());
        }
        for (index, block) in self.blocks.iter().enumerate() {
            let mut element = pdf.struct_element(element_ids[index]);
            element.kind(block.style.role()).parent(document_element_id);
            let mut children = element.children();
            for line in lines.iter().filter(|l| l.block == index) {
                children
                    .marked_content_ref()
                    .marked_content_id(line.mcid)
                    .page(page_ids[line.page]);
            }
        }
        for page in 0..page_count {
            let elements: Vec<Ref> = lines
                .iter()
                .filter(|l| l.page == page)
                .map(|l| element_ids[l.block])
                .collect();
            pdf.indirect(parent_arrays[page]).array().items(elements);

            let mut content = Content::new();
            // Page furniture is marked as an artifact: screen readers skip it.
            content.begin_marked_content(Name(b"Artifact"));
            content
                .set_fill_rgb(0.0, 0.0, 0.569)
                .rect(MARGIN, PAGE_HEIGHT - 60.0, 4.0, 28.0)
                .fill_nonzero();
            content.set_fill_rgb(0.1, 0.1, 0.1);
            content
                .begin_text()
                .set_font(Name(b"F2"), 9.0)
                .next_line(MARGIN + 12.0, PAGE_HEIGHT - 44.0);
            content.show(Str(&win_ansi(&self.header))).end_text();
            content
                .begin_text()
                .set_font(Name(b"F1"), 8.0)
                .next_line(MARGIN, MARGIN - 24.0);
            content
                .show(Str(&win_ansi(&format!(
                    "{} — page {} sur {}",
                    self.title,
                    page + 1,
                    page_count
                ))))
                .end_text();
            content.end_marked_content();
            for line in lines.iter().filter(|l| l.page == page) {
                let (font, size) = self.blocks[line.block].style.font();
                content
                    .begin_marked_content_with_properties(Name(self.blocks[line.block].style.tag()))
                    .properties()
                    .identify(line.mcid);
                content
                    .begin_text()
                    .set_font(Name(font), size)
                    .next_line(MARGIN, line.y);
                content.show(Str(&win_ansi(&line.text))).end_text();
                content.end_marked_content();
            }
            let data = content.finish();
            pdf.stream(content_ids[page], &data);
            let mut page_writer = pdf.page(page_ids[page]);
            page_writer
                .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
                .parent(pages_id)
                .contents(content_ids[page])
                .struct_parents(page as i32)
                .tab_order(TabOrder::StructureOrder);
            let mut resources = page_writer.resources();
            let mut font_dict = resources.fonts();
            font_dict.pair(Name(b"F1"), fonts[0]);
            font_dict.pair(Name(b"F2"), fonts[1]);
            font_dict.pair(Name(b"F3"), fonts[2]);
        }
        pdf.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The text a PDF reader extracts (poppler's pdftotext): proves the PDF renders as text.
    pub fn extract_text(pdf: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("pdftotext")
            .args(["-layout", "-", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("pdftotext (Debian's poppler-utils) must be installed");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(pdf)
            .expect("write");
        let output = child.wait_with_output().expect("pdftotext");
        assert!(
            output.status.success(),
            "pdftotext failed: the PDF is broken"
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    #[test]
    fn wraps_long_text_and_long_words() {
        let lines = wrap(&"mot ".repeat(100), 10.0, false, 200.0);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| text_width(l, 10.0, false) <= 200.0));
        let hash = "a".repeat(64);
        let cut = wrap(&hash, 10.0, true, 100.0);
        assert!(cut.len() > 1 && cut.concat() == hash);
    }

    #[test]
    fn win_ansi_keeps_french_letters() {
        assert_eq!(win_ansi("é€œ"), vec![0xE9, 0x80, 0x9C]);
        assert_eq!(win_ansi("→"), b"?".to_vec());
    }

    #[test]
    fn renders_a_tagged_multi_page_pdf() {
        let mut doc = PdfDocument::new("Essai", "République française");
        doc.push(Style::Title, "Titre");
        for i in 0..120 {
            doc.push(
                Style::Body,
                format!("Paragraphe {i} avec des accents : é à ç."),
            );
        }
        let bytes = doc.render();
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(
            text.contains("/StructTreeRoot")
                && text.contains("/Marked true")
                && text.contains("/Lang (fr-FR)")
        );
        assert!(
            text.contains("/Count 3") || text.contains("/Count 4"),
            "several pages"
        );
    }
}
