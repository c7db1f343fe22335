"""Chat templates of the three backbones, plus the `plain` template of stages 1 and 1.5.

Rendered by our own code rather than the tokenizer's `chat_template`, so that the tiny byte
tokenizer renders the same structure as the real ones, and so that we know exactly which
characters are loss targets. A rendered conversation is a list of `Piece`s: text, and whether
its tokens are trained on (the assistant's reply and its end-of-turn token).

    qwen2.5   <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
              <|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>assistant\\n[{a}<|im_end|>]\\n
    llama3.2  <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
              <|start_header_id|>user<|end_header_id|>\\n\\n{q}<|eot_id|>
              <|start_header_id|>assistant<|end_header_id|>\\n\\n[{a}<|eot_id|>]
    phi3.5    <|system|>\\nYou are a helpful AI assistant.<|end|>\\n<|user|>\\n{q}<|end|>\\n
              <|assistant|>\\n[{a}<|end|>]\\n
    plain     <image>[{a}\\n]        (the user's words are dropped, as in the released stage-1 code)

[...] marks the trained tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from salova.errors import ConfigError, RecordError

IMAGE = "<image>"

LLAMA_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language."
)


@dataclass(frozen=True)
class Piece:
    text: str
    trained: bool  # True: these tokens are loss targets


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    system: str | None  # default system prompt; None = the template has no system turn
    start: str  # once, before everything
    system_turn: str  # "{system}" is replaced
    user_turn: str  # "{text}" is replaced
    assistant_header: str  # before the reply, not trained
    end_of_turn: str  # after the reply, trained (the model must learn to stop)
    after_turn: str  # after end_of_turn, not trained
    keeps_user_text: bool = True  # plain: only the <image> placeholder of the user turn is kept

    def render(self, turns: list[tuple[str, str]], system: str | None = None,
               add_generation_prompt: bool = False) -> list[Piece]:
        """turns [(role, text)] with role "user" or "assistant" -> pieces in order."""
        pieces = [Piece(self.start, False)] if self.start else []
        system = self.system if system is None else system
        if system is not None and self.system_turn:
            pieces.append(Piece(self.system_turn.replace("{system}", system), False))
        for index, (role, text) in enumerate(turns):
            if role == "user":
                pieces.append(Piece(self.user_turn.replace("{text}", self._user_text(text)), False))
            elif role == "assistant":
                pieces += [Piece(self.assistant_header, False), Piece(text + self.end_of_turn, True),
                           Piece(self.after_turn, False)]
            else:
                raise RecordError(f"conversation turn {index}: role {role!r} is neither user nor assistant")
        if add_generation_prompt:
            pieces.append(Piece(self.assistant_header, False))
        return [p for p in pieces if p.text]

    def _user_text(self, text: str) -> str:
        if self.keeps_user_text:
            return text
        return IMAGE if IMAGE in text else ""


TEMPLATES = {
    "qwen2.5": ChatTemplate(
        name="qwen2.5", system="You are a helpful assistant.", start="",
        system_turn="<|im_start|>system\n{system}<|im_end|>\n",
        user_turn="<|im_start|>user\n{text}<|im_end|>\n",
        assistant_header="<|im_start|>assistant\n", end_of_turn="<|im_end|>", after_turn="\n",
    ),
    "llama3.2": ChatTemplate(
        name="llama3.2", system=LLAMA_SYSTEM, start="<|begin_of_text|>",
        system_turn="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        user_turn="<|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>",
        assistant_header="<|start_header_id|>assistant<|end_header_id|>\n\n", end_of_turn="<|eot_id|>",
        after_turn="",
    ),
    "phi3.5": ChatTemplate(
        name="phi3.5", system="You are a helpful AI assistant.", start="",
        system_turn="<|system|>\n{system}<|end|>\n",
        user_turn="<|user|>\n{text}<|end|>\n",
        assistant_header="<|assistant|>\n", end_of_turn="<|end|>", after_turn="\n",
    ),
    "plain": ChatTemplate(
        name="plain", system=None, start="", system_turn="", user_turn="{text}",
        assistant_header="", end_of_turn="\n", after_turn="", keeps_user_text=False,
    ),
}


def get_template(name: str) -> ChatTemplate:
    if name not in TEMPLATES:
        raise ConfigError(f"chat_template = {name!r} is not one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
