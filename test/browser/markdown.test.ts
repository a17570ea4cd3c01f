// The console's Markdown renderer: safe by construction (escape first, then a small subset).
import { describe, expect, it } from "vitest";
import { renderMarkdown } from "../../web/console/src/markdown.js";

describe("console Markdown renderer", () => {
  it("renders headings, emphasis, code, lists and http(s) links", () => {
    const html = renderMarkdown(
      "# Title\n\nSome **bold** and *em* and `code`.\n\n- one\n- two\n\n[docs](https://example.com/a)",
    );
    expect(html).toContain("<h3>Title</h3>");
    expect(html).toContain("<strong>bold</strong>");
    expect(html).toContain("<em>em</em>");
    expect(html).toContain("<code>code</code>");
    expect(html).toContain("<ul><li>one</li><li>two</li></ul>");
    expect(html).toContain('<a href="https://example.com/a" rel="noopener noreferrer" target="_blank">docs</a>');
  });

  it("never lets markup, scripts or other URL schemes through", () => {
    const html = renderMarkdown(
      '<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) [y](https://a"onmouseover="alert(1))',
    );
    expect(html).not.toMatch(/<script|<img|href="javascript/);
    expect(html).toContain("&lt;script&gt;");
    expect(html).not.toMatch(/" onmouseover=|"onmouseover="/);
  });
});
