// What the streaming RPCs send: the next event, a keep-alive, or (Converse) a rejection.
// The TaskEvent message is shared by every stream that sends the same event.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConversationItem } from "../streams/conversation.js";
import type { WatchItem } from "../streams/event-hub.js";
import { taskEventMessage } from "../wire/event-forms.js";

/** WatchTaskResponse and RunStreamResponse. */
export function watchResponse(taskId: string, item: WatchItem) {
  return item.event
    ? { event: taskEventMessage(taskId, item.event) }
    : { keepAlive: { time: timestampFromDate(item.keepAlive) } };
}

export function converseResponse(taskId: string, item: ConversationItem) {
  if (item.rejection) return { rejection: item.rejection };
  return watchResponse(taskId, item.event ? { event: item.event } : { keepAlive: item.keepAlive });
}
