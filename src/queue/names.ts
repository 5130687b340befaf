/** Queue names. Changing one orphans the jobs in the old queue: treat them as a stored format. */
export const QUEUES = {
  /** Intents from webhooks; the processor routes each to onboarding, commands or lifecycle work. */
  events: "gitlab-events",
  /** Reporting back to GitLab (issue, note, CI variables), separate so a GitLab outage retries only this. */
  reports: "gitlab-reports",
  /** Scheduled drift repair. */
  maintenance: "maintenance",
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];
