/**
 * The Keyword search attributes of DESIGN.md. The dev server registers them with
 * `--search-attribute <name>=Keyword`; infra registers them on real clusters.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const FedMode = defineSearchAttributeKey('FedMode', SearchAttributeType.KEYWORD);
export const FedPhase = defineSearchAttributeKey('FedPhase', SearchAttributeType.KEYWORD);
export const FedSource = defineSearchAttributeKey('FedSource', SearchAttributeType.KEYWORD);
export const FedTarget = defineSearchAttributeKey('FedTarget', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [FedMode, FedPhase, FedSource, FedTarget] as const;

/** `--search-attribute` flags for `temporal server start-dev`. */
export function devServerSearchAttributeArgs(): string[] {
  return SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
}
