/**
 * How a session keeps the topics it is in. Most sessions are in one topic, or a handful: the topic's own
 * string while it is one (no array to make: a one-element array is 16 to 24 bytes, times every idle session),
 * a small array while there are few, a Set past that, so leaving stays cheap however many there are.
 */
export type TopicList = string | string[] | Set<string>;

/**
 * @returns the topics of a list, to loop over: never loop over a list as it is, since a lone topic is a
 *   string and would loop over its characters
 */
export function topicsIn(list: TopicList | null): readonly string[] | ReadonlySet<string> {
  return list === null ? [] : typeof list === "string" ? [list] : list;
}

/** @returns how many topics are in a list */
export function topicCount(list: TopicList | null): number {
  return list === null ? 0 : typeof list === "string" ? 1 : list instanceof Set ? list.size : list.length;
}
