"""LLM-jp-4's Harmony control strings: the one definition tune reads them from.

A message is ``<|start|>ROLE<|channel|>CHANNEL<|message|>TEXT`` closed by one end marker:

    <|end|>     closes one message; the conversation (or the reply) goes on
    <|return|>  closes the last assistant message of a reply: the reply is over
    <|call|>    closes a tool call: the caller answers before generation continues

Training masks supervise each assistant turn up to and including its end marker
(tune.data.chat_masks); generation stops on the reply ends and on ``<|end|>`` after a final
message (tune.export.harmony). Token ids are always read from the tokenizer by these names.
"""

START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
END_OF_MESSAGE, RETURN, CALL = "<|end|>", "<|return|>", "<|call|>"
END_MARKERS = (END_OF_MESSAGE, RETURN, CALL)  # every way a message closes
REPLY_ENDS = (RETURN, CALL)  # end a reply: the exported generation_config's eos_token_id
