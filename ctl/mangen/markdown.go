package mangen

import (
	"strings"
)

// FromMarkdown builds a page from a Markdown document like
// docs/configuration.md: the text before the first "##" heading is the
// DESCRIPTION, "##" headings are sections and "###" subsections; a section
// titled "Contents" (links within the document) is left out. Paragraphs,
// bullet lists (nested by two spaces), fenced code and tables are kept;
// a table becomes one tagged paragraph per row, tagged with its first cell.
func FromMarkdown(name, section, short string, md []byte, extra ...Section) *Page {
	p := &Page{Name: name, Section: section, Short: short}
	cur := &Section{Title: "DESCRIPTION", Level: 1}
	flush := func() {
		if cur != nil && (len(cur.Body) > 0 || cur.Level == 1) && !strings.EqualFold(cur.Title, "contents") {
			p.Sections = append(p.Sections, *cur)
		}
	}
	lines := strings.Split(strings.ReplaceAll(string(md), "\r\n", "\n"), "\n")
	var body []Node
	i := 0
	for i < len(lines) {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "# "):
			i++
		case strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "### "):
			cur.Body = body
			flush()
			level := 1
			if strings.HasPrefix(l, "### ") {
				level = 2
			}
			title := strings.TrimSpace(strings.TrimLeft(l, "#"))
			cur, body = &Section{Title: plain(title), Level: level}, nil
			i++
		case strings.HasPrefix(l, "```"):
			j := i + 1
			for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
				j++
			}
			body = append(body, Code(strings.Join(lines[i+1:min(j, len(lines))], "\n")))
			i = j + 1
		case strings.HasPrefix(l, "|"):
			j := i
			for j < len(lines) && strings.HasPrefix(lines[j], "|") {
				j++
			}
			body = append(body, table(lines[i:j])...)
			i = j
		case isBullet(l, 0):
			var bs Bullets
			bs, i = bullets(lines, i, 0)
			body = append(body, bs)
		case strings.TrimSpace(l) == "":
			i++
		default:
			j := i
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" && !startsBlock(lines[j]) {
				j++
			}
			body = append(body, Para(strings.Join(lines[i:j], "\n")))
			i = j
		}
	}
	cur.Body = body
	flush()
	p.Sections = append(p.Sections, extra...)
	return p
}

// plain strips inline markup from a heading ("`[clock]`" -> "[clock]").
func plain(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	s = strings.ReplaceAll(s, "**", "")
	return s
}

func startsBlock(l string) bool {
	return strings.HasPrefix(l, "#") || strings.HasPrefix(l, "```") || strings.HasPrefix(l, "|") || isBullet(l, 0)
}

func isBullet(l string, indent int) bool {
	pre := strings.Repeat(" ", indent)
	return strings.HasPrefix(l, pre+"* ") || strings.HasPrefix(l, pre+"- ")
}

// bullets reads a list whose markers are indented by indent spaces, from
// line i; it returns the list and the first line after it.
func bullets(lines []string, i, indent int) (Bullets, int) {
	var bs Bullets
	for i < len(lines) && isBullet(lines[i], indent) {
		text := []string{strings.TrimSpace(lines[i][indent+2:])}
		var nested []Node
		i++
		for i < len(lines) {
			l := lines[i]
			switch {
			case isBullet(l, indent+2):
				var sub Bullets
				sub, i = bullets(lines, i, indent+2)
				nested = append(nested, sub)
				continue
			case strings.TrimSpace(l) == "":
				// A blank line ends the item unless indented text follows.
				if i+1 < len(lines) && strings.HasPrefix(lines[i+1], strings.Repeat(" ", indent+2)) && strings.TrimSpace(lines[i+1]) != "" && !isBullet(lines[i+1], indent+2) {
					nested = append(nested, Para(strings.Join(text, "\n")))
					text = nil
					i++
					continue
				}
			case strings.HasPrefix(l, strings.Repeat(" ", indent+2)) || !startsBlock(l) && indent == 0 && strings.HasPrefix(l, " "):
				text = append(text, strings.TrimSpace(l))
				i++
				continue
			}
			break
		}
		item := []Node{}
		if len(text) > 0 {
			item = append(item, Para(strings.Join(text, "\n")))
		}
		// The first node is the item's own text; later ones are nested.
		if len(text) == 0 && len(nested) > 0 {
			if p, ok := nested[0].(Para); ok {
				item = append(item, p)
				nested = nested[1:]
			}
		}
		item = append(item, nested...)
		bs = append(bs, item)
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" && i+1 < len(lines) && isBullet(lines[i+1], indent) {
			i++
		}
	}
	return bs, i
}

func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	row = strings.TrimSuffix(row, "|")
	// Split on '|' outside backticks.
	var out []string
	var cur strings.Builder
	code := false
	for _, r := range row {
		switch {
		case r == '`':
			code = !code
			cur.WriteRune(r)
		case r == '|' && !code:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// table renders a Markdown table as one tagged paragraph per row.
func table(rows []string) []Node {
	if len(rows) < 2 {
		return nil
	}
	header := cells(rows[0])
	var out []Node
	for _, r := range rows[2:] {
		c := cells(r)
		if len(c) == 0 {
			continue
		}
		var parts []string
		for k := 1; k < len(c) && k < len(header); k++ {
			if c[k] == "" || c[k] == "—" {
				continue
			}
			parts = append(parts, header[k]+": "+c[k])
		}
		out = append(out, Item{Tag: c[0], Body: []Node{Para(strings.Join(parts, "; "))}})
	}
	return out
}
