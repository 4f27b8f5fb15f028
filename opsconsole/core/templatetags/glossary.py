"""``{% explain "ring" %}``: an inline "what is this?" for a term of the trade.

It renders a <details> (no script, so nothing for the Content-Security-Policy to refuse):
a small "?" whose accessible name is "What is Ring?", opening to the term's sentence and
a link to the glossary. A <details> is not phrasing content: put it in a cell, a <dt>, a
<dd>, a <li> or a <div>, never inside a <p> (the HTML parser would close the paragraph).

The term is checked when the template is compiled, so a misspelt one fails the first
test that renders the page rather than showing an empty help.
"""

from __future__ import annotations

from django import template
from django.template.base import Parser, Token
from django.template.loader import render_to_string

from opsconsole.core.glossary import Term, term_get

register = template.Library()


class ExplainNode(template.Node):
    def __init__(self, term: Term):
        self.term = term

    def render(self, context: template.Context) -> str:
        # A node's output goes into the page as it is (the include escapes the text).
        return render_to_string("includes/explain.html", {"term": self.term}).strip()


@register.tag
def explain(parser: Parser, token: Token) -> ExplainNode:
    bits = token.split_contents()
    if len(bits) != 2 or bits[1][:1] not in "\"'" or bits[1][0] != bits[1][-1]:
        raise template.TemplateSyntaxError('Use {% explain "term" %} with a quoted term.')
    try:
        term = term_get(bits[1][1:-1])
    except KeyError as error:
        raise template.TemplateSyntaxError(str(error.args[0])) from None
    return ExplainNode(term)
