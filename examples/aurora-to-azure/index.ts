// Aurora PostgreSQL (AWS) → Azure Database for PostgreSQL flexible server, then an online
// migration between them, all in one stack. The source cluster has logical replication on (a
// cluster parameter group); the migration's worker runs where `pulumi up` runs, so both
// servers admit that machine's address (config `runnerCidr`).
import * as aws from "@pulumi/aws";
import * as azure from "@pulumi/azure-native";
import * as pulumi from "@pulumi/pulumi";
import { PostgresMigration } from "pulumi-postgres-migration";

const config = new pulumi.Config();
/** The address the migration runs from (your machine or CI runner), e.g. 203.0.113.7/32. */
const runnerCidr = config.require("runnerCidr");
const databases = config.getObject<string[]>("databases") ?? ["orders"];
const sourceUser = config.get("sourceUser") ?? "postgres";
const sourcePassword = config.requireSecret("sourcePassword");
const targetUser = config.get("targetUser") ?? "pgadmin";
const targetPassword = config.requireSecret("targetPassword");

// --- Source: Aurora PostgreSQL 16 with rds.logical_replication = 1 -----------------------
const vpc = aws.ec2.getVpcOutput({ default: true });
const subnets = aws.ec2.getSubnetsOutput({ filters: [{ name: "vpc-id", values: [vpc.id] }] });

const subnetGroup = new aws.rds.SubnetGroup("aurora", { subnetIds: subnets.ids });
const securityGroup = new aws.ec2.SecurityGroup("aurora", {
  vpcId: vpc.id,
  description: "PostgreSQL from the migration runner",
  ingress: [{ protocol: "tcp", fromPort: 5432, toPort: 5432, cidrBlocks: [runnerCidr] }],
  egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }],
});
// Online migration needs logical decoding on the source (static parameter: set at creation).
const parameters = new aws.rds.ClusterParameterGroup("aurora-logical", {
  family: "aurora-postgresql16",
  description: "Aurora PostgreSQL with logical replication for pgmigrate",
  parameters: [
    { name: "rds.logical_replication", value: "1", applyMethod: "pending-reboot" },
    { name: "max_replication_slots", value: "20", applyMethod: "pending-reboot" },
    { name: "max_wal_senders", value: "20", applyMethod: "pending-reboot" },
  ],
});
const cluster = new aws.rds.Cluster("aurora", {
  engine: aws.rds.EngineType.AuroraPostgresql,
  engineVersion: "16.4",
  masterUsername: sourceUser,
  masterPassword: sourcePassword,
  dbClusterParameterGroupName: parameters.name,
  dbSubnetGroupName: subnetGroup.name,
  vpcSecurityGroupIds: [securityGroup.id],
  storageEncrypted: true,
  skipFinalSnapshot: true,
});
const writer = new aws.rds.ClusterInstance("aurora-writer", {
  clusterIdentifier: cluster.id,
  instanceClass: "db.r6g.large",
  engine: aws.rds.EngineType.AuroraPostgresql,
  engineVersion: cluster.engineVersion,
  dbSubnetGroupName: subnetGroup.name,
  publiclyAccessible: true,
});

// --- Target: Azure Database for PostgreSQL flexible server 16 ----------------------------
const group = new azure.resources.ResourceGroup("migration");
const server = new azure.dbforpostgresql.Server("target", {
  resourceGroupName: group.name,
  version: azure.dbforpostgresql.PostgresMajorVersion.PostgresMajorVersion_16,
  administratorLogin: targetUser,
  administratorLoginPassword: targetPassword,
  sku: { name: "Standard_D2ds_v5", tier: azure.dbforpostgresql.SkuTier.GeneralPurpose },
  storage: { storageSizeGB: 128 },
  network: { publicNetworkAccess: azure.dbforpostgresql.ServerPublicNetworkAccessState.Enabled },
});
const [firstAddress, lastAddress] = cidrRange(runnerCidr);
const firewall = new azure.dbforpostgresql.FirewallRule("migration-runner", {
  resourceGroupName: group.name,
  serverName: server.name,
  startIpAddress: firstAddress,
  endIpAddress: lastAddress,
});

// --- The migration: copy, then replicate until `pulumi config set cutover true` ----------
const migration = new PostgresMigration(
  "aurora-to-azure",
  {
    source: {
      host: cluster.endpoint,
      port: cluster.port,
      username: sourceUser,
      password: sourcePassword,
      sslMode: "require",
      serverType: "AWS_AURORA",
    },
    target: {
      host: server.fullyQualifiedDomainName.apply((fqdn) => fqdn ?? ""),
      username: targetUser,
      password: targetPassword,
      sslMode: "require",
    },
    databases,
    mode: "Online",
    migrateRoles: true,
    cutover: config.getBoolean("cutover") ?? false,
  },
  { dependsOn: [writer, firewall] },
);

export const sourceEndpoint = cluster.endpoint;
export const targetServer = server.fullyQualifiedDomainName;
export const state = migration.state;
export const substate = migration.substate;
export const latencySeconds = migration.latencySeconds;
export const dbDetails = migration.dbDetails;

/** First and last IPv4 address of a CIDR block (Azure firewall rules take a range). */
function cidrRange(cidr: string): [string, string] {
  const [address, bits = "32"] = cidr.split("/");
  const value = address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(bits));
  const first = value - (value % size);
  const text = (n: number): string =>
    [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
  return [text(first), text(first + size - 1)];
}
